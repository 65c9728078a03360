"""Evaluation protocols: the registry that says, for each way of evaluating a model, where its
code is and how runs under it are shown.

A protocol is a split of the data, the numbers a model is held to on it, and the rows beside the
model (baselines, the planted oracle). Each recipe declares one (``Recipe.protocol``, e.g.
``"implicit"``), the training harness records it in ``metrics.json`` (``"protocol"``), and
everything that reads finished runs (``tables.py``, ``demo.py``) looks the protocol up by that
name instead of guessing from which metric keys exist.

==========  ==================================  =====================================
name        evaluation                          table
==========  ==================================  =====================================
implicit    ``implicit.ImplicitEvaluation``     ``ranking_table.RankingTable`` (DVBPR
            (leave-one-out, per-user AUC on     Table III: all / cold items, RAND,
            all and cold items)                 PopRank, VisRank, Oracle)
ratings     ``ratings.RatingEvaluation``        ``rating_table.RatingTable`` (RMSE,
            (per-customer 80/10/10, RMSE /      MAE, vote AUCs, fit seconds, beside
            MAE, vote AUCs)                     global mean, biases, MF)
pairs       ``pairs.PairEvaluation`` (per-      ``rating_table.RatingTable``'s vote
            customer 80/10/10 pair votes,       columns, beside the personal and the
            pooled and customer AUC, AUPRC,     global (average customer) oracle
            Recall@50%, Precision@10)
outfits     ``outfits.OutfitEvaluation`` (per-  ``outfits.OutfitTable`` (PAN Tables
            user 80/10/10 outfits, FITB, per-   1-2: FITB, AUC, NDCG, beside the
            user AUC and NDCG)                  random and the oracle rows)
complete_   ``complete_the_look.CompleteThe-    ``complete_the_look.CompleteTheLook-
the_look    LookEvaluation`` (the outfit        Table`` (triplet accuracy, FITB,
            split; triplet accuracy, FITB,      outfit AUC, embedding spread beside
            similar-item precision@10)          random, similar as complementary,
                                                the oracles; similar-item P@10)
design      ``design.DesignEvaluation`` (top-3  ``design_table.DesignTable`` (paper 003
            images per (customer, category)     Table IV: random real, random generated,
            from four sources: preference,      retrieval, synthesis, beside the paper's
            inception score, 1 - SSIM, planted  numbers; the eta sweep of Fig. 3 and
            true score, Frechet distance)       its PNG)
==========  ==================================  =====================================

**Adding a protocol** (as "pairs" was: AUC of held-out +1/-1 pair votes):

1. ``evaluation/<name>.py`` with its evaluation class, built as ``Class(dataset, seed=...,
   model_name=...)``: it splits the data and computes the metrics from arrays or callables the
   recipe passes (never from a model or a recipe: ``evaluation`` does not import ``training``).
2. A table with ``write(directory)`` built from runs: a function ``(dataset label, method ->
   metrics.json content, *, proposed, reference) -> table`` (``RankingTable.from_runs``).
3. One ``Protocol(...)`` entry in ``PROTOCOLS`` below: its name, the evaluation's dotted path,
   the table function, the summary columns the demo shows and the reference lines of its
   training curves.
4. A recipe adapter in ``training/recipes/`` (like ``implicit.ImplicitRankingRecipe``) that sets
   ``protocol = "<name>"``, builds the evaluation with ``Recipe.protocol_evaluation`` and
   passes it what the model gives.

Runs written before metrics.json recorded its protocol are placed by ``protocol_of``'s one
fallback; a new protocol never needs a clause there.
"""

from __future__ import annotations

import dataclasses
import pkgutil
from typing import Any, Callable, Mapping

from tfrec_fashion.errors import ConfigError
from tfrec_fashion.evaluation.ranking_table import RankingTable
from tfrec_fashion.evaluation.rating_table import RatingTable, prefixed

#: (dataset label, method -> metrics.json content, *, proposed, reference) -> a table with
#: ``write(directory)`` and ``format_markdown()``.
TableFromRuns = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: where its code is and how runs under it are shown.

    Args:
        name: what recipes declare (``Recipe.protocol``) and metrics.json records.
        evaluation: "module:Class" of the evaluation class (imported when a recipe first needs
            it, so reading the registry stays light); built as ``Class(dataset, seed=,
            model_name=)``.
        table: builds the comparison table of finished runs (``tfrec-fashion table``):
            ``table(label, runs, proposed=..., reference=...)``.
        summary_columns: the metrics the demo's summary shows for runs under this protocol,
            in order (a column appears when some run reports it).
        curve_references: metrics -> {label: value}, the horizontal lines drawn on a run's
            training curves beside the validation metric it is monitored by.
    """

    name: str
    evaluation: str
    table: TableFromRuns
    summary_columns: tuple[str, ...]
    curve_references: Callable[[Mapping[str, Any]], dict[str, float]]

    def evaluation_class(self) -> type:
        """The evaluation class ``evaluation`` names."""
        return pkgutil.resolve_name(self.evaluation)


def baseline_test_aucs(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The rows beside the model, by their AUC on all held-out items: ``<row>_test_auc`` ->
    {row: value} (``popularity``, ``oracle``, ``biases``, ...); cold-item AUCs left out."""
    return {key.replace("_test_auc", ""): value for key, value in metrics.items()
            if key.endswith("_test_auc") and not key.endswith("cold_test_auc")
            and isinstance(value, float)}


def _rating_table(label: str, runs: dict[str, dict[str, Any]], *, proposed: str,
                  reference: str) -> RatingTable:
    # One row per method, best values bold: no improvement columns, so no proposed/reference.
    return RatingTable.from_runs(label, runs)


def _pair_table(label: str, runs: dict[str, dict[str, Any]], *, proposed: str,
                reference: str) -> RatingTable:
    # The rating table's vote columns (AUC, AUPRC, Recall@50%, Precision@10, pooled and per
    # customer), plus the ceiling of a model that is not personalised.
    table = RatingTable.from_runs(label, runs)
    first = next(iter(runs.values()))
    if "global_oracle_test_auc" in first:
        table.add("Global oracle (the average customer's planted taste)",
                  prefixed(first, "global_oracle_"))
    return table


def _outfit_table(label: str, runs: dict[str, dict[str, Any]], *, proposed: str,
                  reference: str) -> Any:
    # PAN's Tables 1-2 (FITB, AUC, NDCG), imported here so reading the registry stays light.
    from tfrec_fashion.evaluation.outfits import OutfitTable

    return OutfitTable.from_runs(label, runs)


def _complete_the_look_table(label: str, runs: dict[str, dict[str, Any]], *, proposed: str,
                             reference: str) -> Any:
    # Imported here so reading the registry stays light.
    from tfrec_fashion.evaluation.complete_the_look import CompleteTheLookTable

    return CompleteTheLookTable.from_runs(label, runs)


def _design_table(label: str, runs: dict[str, dict[str, Any]], *, proposed: str,
                  reference: str) -> Any:
    # Imported here so reading the registry stays light.
    from tfrec_fashion.evaluation.design_table import DesignTable

    return DesignTable.from_runs(label, runs)


def _triplet_accuracies(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The complete-the-look rows beside the model by their test triplet accuracy."""
    return {key.replace("_test_triplet_accuracy", ""): value for key, value in metrics.items()
            if key.endswith("_test_triplet_accuracy") and isinstance(value, float)}


PROTOCOLS: dict[str, Protocol] = {protocol.name: protocol for protocol in (
    Protocol(
        name="implicit",
        evaluation="tfrec_fashion.evaluation.implicit:ImplicitEvaluation",
        table=RankingTable.from_runs,
        summary_columns=("test_auc", "cold_test_auc", "oracle_test_auc",
                         "oracle_cold_test_auc", "popularity_test_auc",
                         "popularity_cold_test_auc"),
        curve_references=baseline_test_aucs),
    Protocol(
        name="ratings",
        evaluation="tfrec_fashion.evaluation.ratings:RatingEvaluation",
        table=_rating_table,
        summary_columns=("test_auc", "oracle_test_auc", "test_rmse", "biases_test_auc",
                         "mf_test_auc"),
        curve_references=baseline_test_aucs),
    Protocol(
        name="pairs",
        evaluation="tfrec_fashion.evaluation.pairs:PairEvaluation",
        table=_pair_table,
        summary_columns=("test_auc", "test_customer_auc", "test_customer_auprc",
                         "global_oracle_test_auc", "oracle_test_auc"),
        curve_references=baseline_test_aucs),
    Protocol(
        name="outfits",
        evaluation="tfrec_fashion.evaluation.outfits:OutfitEvaluation",
        table=_outfit_table,
        summary_columns=("test_fitb", "test_auc", "test_ndcg", "oracle_test_fitb",
                         "oracle_test_auc"),
        curve_references=baseline_test_aucs),
    Protocol(
        name="complete_the_look",
        evaluation="tfrec_fashion.evaluation.complete_the_look:CompleteTheLookEvaluation",
        table=_complete_the_look_table,
        summary_columns=("test_triplet_accuracy", "test_fitb",
                         "similar_as_complementary_test_triplet_accuracy",
                         "oracle_test_triplet_accuracy", "similar_precision_at_10"),
        curve_references=_triplet_accuracies),
    Protocol(
        name="design",
        evaluation="tfrec_fashion.evaluation.design:DesignEvaluation",
        table=_design_table,
        summary_columns=("synthesis_preference_mean", "retrieval_preference_mean",
                         "synthesis_true_score_mean", "retrieval_true_score_mean",
                         "random_real_true_score_mean", "synthesis_quality_mean",
                         "synthesis_beats_retrieval_true", "classifier_test_accuracy"),
        # A GAN's curves are its losses; no row of the protocol is on their scale.
        curve_references=lambda metrics: {}),
)}


def get_protocol(name: str) -> Protocol:
    """The registered protocol ``name``."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown evaluation protocol {name!r}; known: {sorted(PROTOCOLS)}. "
                          f"Received: protocol={name!r}")
    return PROTOCOLS[name]


def protocol_of(metrics: Mapping[str, Any]) -> Protocol:
    """The protocol a run's metrics were made under: its metrics.json's ``"protocol"``."""
    name = metrics.get("protocol")
    if name is None:
        # Only for metrics.json written before runs recorded their protocol: then the two
        # protocols that existed are told apart by the one number only the rating protocol
        # reports. Every newer run names its protocol, so this never grows.
        name = "ratings" if "test_rmse" in metrics else "implicit"
    return get_protocol(name)


def summary_columns() -> tuple[str, ...]:
    """Every protocol's summary columns, in registry order, each once."""
    return tuple(dict.fromkeys(column for protocol in PROTOCOLS.values()
                               for column in protocol.summary_columns))
