"""The outfit protocol (PAN, paper 001 section 3.1, following FHN [9]): users' outfits (top,
bottom, shoes), held out per user, scored by a personalised outfit model; FITB, AUC and NDCG as
in Tables 1-2.

- **Split**: each user's complete outfits (a user, every slot filled) at random 80 / 10 / 10
  into train / validation / test (``data.splits.split_ratings_by_user``), so every user keeps
  training outfits. A user needs 5 outfits to hold one out for test and one for validation
  (halves round up); a world where no user has enough is refused.
- **FITB** (fill in the blank): every held-out outfit becomes one question: one slot, chosen at
  random, is blanked, and ``n_choices`` = 4 candidates of that slot's category are offered, the
  true item and 3 random distractors (distinct, none the true item, none completing another
  outfit the user owns). The answer's column is random too. The model scores each completed
  outfit for the outfit's user; the accuracy of picking the true one is
  ``metrics.fitb_accuracy`` (a tie at the top counts 1 / number tied, so a constant score gets
  exactly 1/4).
- **AUC** and **NDCG**: each user's candidate list is their held-out outfits (positives) and
  ``negatives_per_outfit`` = 4 random outfits per positive (one uniform item of each slot's
  category, none an outfit the user owns). AUC is ROC AUC within each user's list
  (``metrics.customer_level``, a tie counts 1/2), NDCG is NDCG over each user's whole list
  (``metrics.ndcg``, binary relevance, tie-averaged, k = the list's length); both are averaged
  over users, each user counting equally.
- **Rows beside the model**: on a planted world (``dataset.truth`` has the arrays
  ``true_outfit_score`` reads) ``oracle``, the user's true outfit score, and ``global_oracle``,
  the true score of the average user (the ceiling of a model that is not personalised); always
  ``random``, seeded uniform scores (FITB ~0.25, AUC ~0.5).

FITB questions and negatives are drawn once per evaluation from ``seed``, so every model of a
comparison answers the same questions.

Departures from the paper, which does not spell these out: its FITB is non-personal (Han et
al.'s); ours asks the outfit's own user, as the personalised models score (user, outfit). The
ratio of negative to positive outfits of the AUC / NDCG lists is not given (FHN mixes random
items into negative outfits, as here); we take 4 per positive (``negatives_per_outfit``). NDCG
is over the whole list (no cut-off is given).

A model is held to the protocol through a score function ``score(user, outfits)`` of int arrays
[n] and [n, n_slots] -> float [n], higher = better: the recipe passes it, this module never sees
a model. During training, ``validation_metrics`` gives ``training.callbacks.EpochMetrics`` the
validation numbers (logged as ``val_fitb``, ``val_auc``, ``val_ndcg``: monitor ``val_auc``), as
the pair protocol's recipes do.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset, Outfits
from tfrec_fashion.data.splits import RatingSplit, split_ratings_by_user
from tfrec_fashion.data.synthetic_truth import true_outfit_score
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.rating_table import RatingTable
from tfrec_fashion.metrics.choice import fitb_accuracy
from tfrec_fashion.metrics.customer_level import customer_metric_table
from tfrec_fashion.metrics.ndcg import ndcg_at_k_values

OutfitScore = Callable[[np.ndarray, np.ndarray], np.ndarray]
_SPLITS = ("validation", "test")
METRICS = ("fitb", "auc", "ndcg")
#: What ``true_outfit_score`` reads: the oracle row exists where the truth holds all of these.
ORACLE_TRUTH = ("user_item_score", "outfit_compatibility_weight", "user_subspace_weights",
                "item_subspace_codes", "subspace_compatibility")
_MAX_REDRAWS = 100


@dataclasses.dataclass(frozen=True)
class FitbQuestions:
    """Fill-in-the-blank questions: ``user`` int [n]; ``choices`` int [n, n_choices, n_slots],
    each question's outfit completed by each candidate; ``answer`` int [n], the true column;
    ``blank`` int [n], the slot blanked."""

    user: np.ndarray
    choices: np.ndarray
    answer: np.ndarray
    blank: np.ndarray


@dataclasses.dataclass(frozen=True)
class CandidateLists:
    """Each user's held-out outfits (``label`` 1) and random outfits (0): ``user`` int [m],
    ``items`` int [m, n_slots]; ``rows`` int [n_users_listed, longest list], each list's rows,
    -1 past its end."""

    user: np.ndarray
    items: np.ndarray
    label: np.ndarray
    rows: np.ndarray


class OutfitEvaluation:
    """Splits a dataset's outfits and holds outfit scores to them (see the module docstring).

    Args:
        dataset: a dataset with ``outfits`` (and items whose ``category`` names the slots).
        seed: seeds the per-user split, the FITB questions and the negative outfits.
        model_name: named in errors.
        n_choices: FITB candidates per question (paper: 4).
        negatives_per_outfit: random outfits per held-out outfit in the AUC / NDCG lists.

    Example:
        >>> evaluation = OutfitEvaluation(world, seed=0)
        >>> evaluation.evaluate(lambda user, outfits: model_scores(user, outfits))
        {"test_fitb": ..., "test_auc": ..., "test_ndcg": ..., "oracle_test_fitb": ..., ...}
    """

    def __init__(self, dataset: FashionDataset, seed: int = 0, model_name: str = "the model",
                 n_choices: int = 4, negatives_per_outfit: int = 4):
        outfits = complete_outfits(dataset.outfits)
        if outfits is None or len(outfits) == 0:
            raise DataError(f"model {model_name} needs users' outfits; dataset {dataset.name!r} "
                            "has none with a user and every slot filled: use the synthetic "
                            "world (outfits_per_user > 0) or the Fashion-MNIST world "
                            "(outfits_per_user > 0)")
        try:
            self.split: RatingSplit = split_ratings_by_user(outfits, seed=seed)
        except DataError as error:
            raise DataError(f"model {model_name}: dataset {dataset.name!r} has too few outfits "
                            f"per user for the 80/10/10 split (5 per user hold one out for "
                            f"test and one for validation): {error}") from error
        self.dataset, self.seed = dataset, seed
        self.n_choices, self.negatives_per_outfit = n_choices, negatives_per_outfit
        self.pools = slot_pools(dataset, outfits.slots, n_choices)
        owned = {(int(u), *map(int, row)) for u, row in zip(outfits.user, outfits.items)}
        self.questions: dict[str, FitbQuestions] = {}
        self.lists: dict[str, CandidateLists] = {}
        for stream, split in enumerate(_SPLITS):
            held_out: Outfits = getattr(self.split, split)
            self.questions[split] = fitb_questions(
                held_out, self.pools, n_choices, owned, np.random.default_rng([seed, 1, stream]))
            self.lists[split] = candidate_lists(
                held_out, self.pools, negatives_per_outfit, owned,
                np.random.default_rng([seed, 2, stream]))

    def metrics(self, score: OutfitScore, split: str = "test") -> dict[str, float]:
        """``fitb``, ``auc`` and ``ndcg`` of ``score`` on the ``split`` outfits (module
        docstring); AUC and NDCG are means over users."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}. Received: split={split!r}")
        questions, lists = self.questions[split], self.lists[split]
        n, k, n_slots = questions.choices.shape
        choice_scores = _call(score, np.repeat(questions.user, k),
                              questions.choices.reshape(n * k, n_slots)).reshape(n, k)
        list_scores = _call(score, lists.user, lists.items)
        per_user_auc = customer_metric_table(lists.user, list_scores, lists.label)["roc_auc"]
        return {"fitb": fitb_accuracy(choice_scores, questions.answer),
                "auc": float(np.nanmean(per_user_auc)),
                "ndcg": float(ndcg_per_user(list_scores, lists).mean())}

    def evaluate(self, score: OutfitScore) -> dict[str, float]:
        """The model's, the oracle's (planted worlds only) and the random row's metrics on the
        validation and test outfits: ``test_fitb``, ``validation_auc``, ``oracle_test_ndcg``,
        ``random_test_fitb``, ..."""
        results = {}
        for prefix, row in (("", score), *((f"{name}_", fn) for name, fn in self.rows().items())):
            for split in _SPLITS:
                results.update({f"{prefix}{split}_{key}": value
                                for key, value in self.metrics(row, split).items()})
        return results

    def validation_metrics(self, score_of: Callable[[Any], OutfitScore]
                           ) -> Callable[[Any], dict[str, float]]:
        """``compute(model)`` for ``training.callbacks.EpochMetrics``: the validation
        ``fitb``, ``auc`` and ``ndcg`` of ``score_of(model)`` (logged as ``val_auc``, ...)."""
        return lambda model: self.metrics(score_of(model), "validation")

    def rows(self) -> dict[str, OutfitScore]:
        """The rows beside the model: on a planted world ``oracle``, the user's true outfit
        score, and ``global_oracle``, the true score of the average user (mean item scores and
        mean pair weights over users: the ceiling of a model that is not personalised, as
        PAN's non-personal baselines); always ``random``, uniform scores seeded by the
        evaluation's seed and the call's size."""
        truth = self.dataset.truth
        rows: dict[str, OutfitScore] = {}
        if all(name in truth for name in ORACLE_TRUTH):
            average = {**truth, **{name: truth[name].mean(axis=0, keepdims=True)
                                   for name in ("user_item_score", "user_subspace_weights")}}
            rows["oracle"] = lambda user, outfits: true_outfit_score(truth, user, outfits)
            rows["global_oracle"] = lambda user, outfits: true_outfit_score(
                average, np.zeros(len(user), np.int64), outfits)
        seed = self.seed
        rows["random"] = lambda user, outfits: np.random.default_rng(
            [seed, 3, len(user)]).random(len(user))
        return rows


def complete_outfits(outfits: Outfits | None) -> Outfits | None:
    """The outfits with a user and every slot filled (the ones the protocol can hold out)."""
    if outfits is None:
        return None
    keep = (np.asarray(outfits.user) >= 0) & (np.asarray(outfits.items) >= 0).all(axis=1)
    return Outfits(ids=np.asarray(outfits.ids)[keep],
                   user=np.asarray(outfits.user, np.int32)[keep],
                   items=np.asarray(outfits.items, np.int32)[keep], slots=tuple(outfits.slots))


def slot_pools(dataset: FashionDataset, slots: tuple[str, ...], n_choices: int
               ) -> list[np.ndarray]:
    """Per slot, the items whose ``category`` is the slot's name: int arrays, what distractors
    and negative outfits are drawn from."""
    category = np.asarray(dataset.items.category).astype(str)
    pools = [np.flatnonzero(category == slot) for slot in slots]
    for slot, pool in zip(slots, pools):
        if len(pool) < n_choices:
            raise DataError(f"dataset {dataset.name!r} has {len(pool)} items of category "
                            f"{slot!r}; FITB needs at least n_choices={n_choices} per slot")
    return pools


def fitb_questions(outfits: Outfits, pools: list[np.ndarray], n_choices: int,
                   owned: set[tuple[int, ...]], rng: np.random.Generator) -> FitbQuestions:
    """One question per outfit: a random blank slot, the true item and ``n_choices - 1``
    distinct distractors of the slot's pool that complete no outfit ``owned`` by the user
    ((user, *items) tuples), the true one at a random column."""
    n, n_slots = outfits.items.shape
    blank = rng.integers(0, n_slots, n)
    answer = rng.integers(0, n_choices, n)
    truth = outfits.items[np.arange(n), blank]
    choices = np.repeat(outfits.items[:, None, :], n_choices, axis=1)
    redraw = np.ones(n, bool)
    for _ in range(_MAX_REDRAWS):
        for row in np.flatnonzero(redraw):
            pool = pools[blank[row]]
            picks = pool[rng.integers(0, len(pool), n_choices)]
            picks[answer[row]] = truth[row]
            choices[row, :, blank[row]] = picks
        redraw = _repeated(choices[np.arange(n), :, blank])
        redraw |= np.array([[(int(u), *map(int, c)) in owned for c in row].count(True) > 1
                            for u, row in zip(outfits.user, choices)], bool)
        if not redraw.any():
            return FitbQuestions(user=outfits.user.astype(np.int64), choices=choices,
                                 answer=answer, blank=blank)
    raise DataError(f"could not draw {n_choices - 1} distinct distractors for "
                    f"{int(redraw.sum())} FITB questions: the slots' item pools are too small")


def candidate_lists(outfits: Outfits, pools: list[np.ndarray], negatives_per_outfit: int,
                    owned: set[tuple[int, ...]], rng: np.random.Generator) -> CandidateLists:
    """Each held-out outfit (label 1) with ``negatives_per_outfit`` random outfits of its user
    (label 0, one uniform item per slot's pool, never an ``owned`` outfit), grouped by user."""
    n, n_slots = outfits.items.shape
    user = np.repeat(outfits.user.astype(np.int64), negatives_per_outfit)
    negatives = np.empty((len(user), n_slots), np.int64)
    redraw = np.ones(len(user), bool)
    for _ in range(_MAX_REDRAWS):
        for slot, pool in enumerate(pools):
            negatives[redraw, slot] = pool[rng.integers(0, len(pool), int(redraw.sum()))]
        redraw = np.array([(int(u), *map(int, row)) in owned
                           for u, row in zip(user, negatives)], bool)
        if not redraw.any():
            break
    else:
        raise DataError("could not draw negative outfits outside the users' own outfits")
    all_user = np.concatenate([outfits.user.astype(np.int64), user])
    items = np.concatenate([outfits.items.astype(np.int64), negatives])
    label = np.concatenate([np.ones(n, np.int64), np.zeros(len(user), np.int64)])
    order = np.argsort(all_user, kind="stable")
    all_user, items, label = all_user[order], items[order], label[order]
    users, start, count = np.unique(all_user, return_index=True, return_counts=True)
    offsets = np.arange(count.max())
    rows = np.where(offsets < count[:, None], start[:, None] + offsets, -1)
    return CandidateLists(user=all_user, items=items, label=label, rows=rows)


def ndcg_per_user(scores: np.ndarray, lists: CandidateLists) -> np.ndarray:
    """NDCG of every user's whole candidate list: float [n_users_listed]. Lists are padded to
    the longest with irrelevant rows scored below every real one, which adds nothing."""
    scores = np.asarray(scores, np.float64)
    filled = lists.rows >= 0
    safe = np.maximum(lists.rows, 0)
    padded = np.where(filled, scores[safe], scores.min() - 1.0)
    relevance = np.where(filled, lists.label[safe], 0).astype(np.float64)
    return ndcg_at_k_values(padded, relevance, k=lists.rows.shape[1])


def _repeated(values: np.ndarray) -> np.ndarray:
    """bool [n]: rows of int [n, k] holding some value twice."""
    ordered = np.sort(values, axis=1)
    return (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)


def _call(score: OutfitScore, user: np.ndarray, outfits: np.ndarray) -> np.ndarray:
    values = np.asarray(score(user, outfits), np.float64).reshape(-1)
    if values.shape != (len(user),) or not np.isfinite(values).all():
        raise ValueError(f"the outfit score must return {len(user)} finite floats. Received: "
                         f"shape {values.shape}, {int((~np.isfinite(values)).sum())} not finite")
    return values


# ---------------------------------------------------------------------------- the table
#: metrics.json key -> column header (PAN Tables 1-2).
COLUMNS = {"test_fitb": "FITB", "test_auc": "AUC", "test_ndcg": "NDCG"}


@dataclasses.dataclass
class OutfitTable:
    """PAN's Tables 1-2 from finished runs: FITB, AUC and NDCG per method, the random row first,
    the global and the personal oracle (planted truth) last; the best method of each column in
    bold (the reference rows never are).

    A protocol on the same outfits with other columns subclasses it and sets the class
    attributes (``evaluation.complete_the_look.CompleteTheLookTable``).

    Args:
        dataset: the dataset's label, printed in the title.
    """

    dataset: str
    rows: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict, init=False)
    #: metrics prefix -> the reference rows' names; random first, the runs after it.
    REFERENCES: ClassVar[dict[str, str]] = {
        "random_": "Random", "global_oracle_": "Global oracle (the average user's planted taste)",
        "oracle_": "Oracle (planted truth)"}
    #: metrics.json key -> column header; the columns ranked (bold best); the title's words.
    COLUMNS: ClassVar[dict[str, str]] = COLUMNS
    RANKED: ClassVar[tuple[str, ...]] = tuple(COLUMNS)
    TITLE: ClassVar[str] = "Held-out outfits on"

    @classmethod
    def from_runs(cls, dataset: str, runs: dict[str, dict[str, Any]], *, proposed: str = "",
                  reference: str = "") -> OutfitTable:
        """The table of runs (method -> metrics.json content); the reference rows from the
        first run (every run computes the same ones) when it has them."""
        table = cls(dataset)
        first = next(iter(runs.values()))
        present = next(iter(cls.COLUMNS))
        for prefix, name in cls.REFERENCES.items():
            if f"{prefix}{present}" in first:
                table.rows[name] = cls.columns_of(first, prefix)
            if prefix == "random_":
                table.rows.update({method: cls.columns_of(metrics, "")
                                   for method, metrics in runs.items()})
        return table

    @classmethod
    def columns_of(cls, metrics: dict[str, Any], prefix: str) -> dict[str, float]:
        """A row's numbers: ``<prefix><column>`` of ``metrics`` for each column (NaN if absent)."""
        return {c: float(metrics.get(f"{prefix}{c}", math.nan)) for c in cls.COLUMNS}

    def best(self, column: str) -> str | None:
        values = {method: row[column] for method, row in self.rows.items()
                  if method not in self.REFERENCES.values() and not math.isnan(row[column])}
        return max(values, key=values.get) if values else None

    def format_markdown(self) -> str:
        lines = [f"{self.TITLE} {self.dataset}", "",
                 "| method | " + " | ".join(self.COLUMNS.values()) + " |",
                 "|---|" + "---:|" * len(self.COLUMNS)]
        best = {column: self.best(column) for column in self.RANKED}
        for method, row in self.rows.items():
            cells = ["-" if math.isnan(row[c]) else f"{row[c]:.4f}" for c in self.COLUMNS]
            cells = [f"**{text}**" if best.get(c) == method else text
                     for c, text in zip(self.COLUMNS, cells)]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content, NaN as None."""
        return {"dataset": self.dataset,
                "rows": {m: {c: None if math.isnan(v) else v for c, v in row.items()}
                         for m, row in self.rows.items()},
                "best": {c: self.best(c) for c in self.RANKED}}

    #: ``table.md`` and ``table.json`` in ``directory``, as the rating table writes them.
    write = RatingTable.write
