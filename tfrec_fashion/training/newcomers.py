"""How fast a newcomer becomes known (issue 24's evaluation): a model fitted without some
customers, who then answer the survey and vote 0, 5, 10, 20, 40 times; Partial Dual folds them
in (``models.partial_dual.FoldIn``), StyNet runs its customer tower's unknown-id feature path
on the survey answers and the votes (``StyNetRecipe.new_customer_query``).

``fit_without_customers`` removes whole customers from the recipe's rating split (train,
validation and test) before the fit, so the model never saw them. ``newcomer_curve`` gives each
held-out customer the first k of their votes (in a seeded shuffle; the same prefix grows with k,
and both methods get the same prefixes) and measures, at every k:

- **vote AUC**: the customer-averaged ROC AUC (``evaluation.ratings.vote_aucs``) of the
  method's predicted rating on the customer's votes after the largest k (the same evaluation
  votes at every k): did the method learn what this customer loves or leaves?
- **recommendation AUC** (planted worlds): for each held-out customer, the ROC AUC of the
  method's served ranking score over the whole catalogue less the items whose votes it was
  given (the first ``max(vote_counts)``, the same candidates at every k), the positives being
  the planted world's: items whose true score (``truth["user_item_score"]``) is above the
  customer's median (the rule that makes a vote +1 before the vote noise), averaged over
  customers: would the catalogue ranked for this customer put what they truly like first?

The two scores per method: the predicted rating (Partial Dual offset + u . v; StyNet the
paper's rating head on [E_c, M_i]) ranks the votes; the served retrieval score (Partial Dual
the same; StyNet E_c . M_i, what its export's index ranks) ranks the catalogue. Beside every
method: its **mean customer** (what an unknown id gets today: the mean vector of the fitted
customers; 0 votes and no survey) and the **oracle**, the planted world's own scores (vote AUC:
the true score less the customer's median, the votes' noise-free margin; recommendation AUC: 1
by construction, its positives are defined by the true scores).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset, Ratings
from tfrec_fashion.data.splits import RatingSplit
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.evaluation.ratings import vote_aucs
from tfrec_fashion.models.partial_dual import FoldIn

VOTE_COUNTS: tuple[int, ...] = (0, 5, 10, 20, 40)
#: the curve's metrics, each beside its mean-customer and oracle rows.
METRICS = ("auc", "recommendation_auc")


def choose_held_out(n_users: int, count: int, seed: int) -> np.ndarray:
    """int64 [count]: customers drawn at random (seeded), sorted."""
    if not 0 < count < n_users:
        raise ValueError(f"`count` held-out customers must be in [1, {n_users - 1}] of "
                         f"{n_users}. Received: count={count}")
    return np.sort(np.random.default_rng(seed).choice(n_users, count, replace=False))


def fit_without_customers(recipe, held_out: np.ndarray, directory: str | Path):
    """Fits ``recipe`` (a prepared ``PartialDualRecipe`` or ``StyNetRecipe``) on its split less
    every rating of the ``held_out`` customers, and returns the fitted model; the recipe's split
    (and its evaluation's, which StyNet validates on each epoch) is replaced by the reduced one,
    so the mean customer is the mean over the fitted customers only and StyNet's vote histories
    hold none of the held-out customers' votes."""
    from tfrec_fashion.training.recipes import SolverRecipe

    split = recipe.split

    def without(table: Ratings) -> Ratings:
        keep = ~np.isin(table.user, held_out)
        return dataclasses.replace(table, **{
            field.name: getattr(table, field.name)[keep] for field in dataclasses.fields(table)
            if getattr(table, field.name) is not None})

    recipe.split = RatingSplit(without(split.train), without(split.validation),
                               without(split.test))
    recipe.evaluation.split = recipe.split
    recipe.prepare_inputs(recipe.dataset)
    directory = Path(directory)
    if isinstance(recipe, SolverRecipe):
        return recipe.solve(directory / "state", directory / "logs")
    return _fit_keras(recipe, directory)


def _fit_keras(recipe, directory: Path):
    """The harness's ``fit`` of a prepared Keras recipe, without a run directory: its
    validation callbacks, the best epoch of ``train.monitor`` restored, early stopping."""
    import tensorflow as tf

    from tfrec_fashion.training.callbacks import ValidatedEarlyStopping, validating_every
    from tfrec_fashion.training.harness import make_optimizer, set_seeds

    config = recipe.train_config
    set_seeds(recipe.seed, config.deterministic)
    model = recipe.build_model()
    model.compile(optimizer=make_optimizer(config))
    best = directory / "best"
    callbacks = [*validating_every(recipe.callbacks(model), config.validation_freq),
                 tf.keras.callbacks.ModelCheckpoint(
                     str(best), monitor=config.monitor, mode=config.monitor_mode,
                     save_best_only=True, save_weights_only=True, verbose=0)]
    if config.early_stopping_patience:
        callbacks.append(ValidatedEarlyStopping(
            config.validation_freq, monitor=config.monitor, mode=config.monitor_mode,
            patience=config.early_stopping_patience))
    train_data, validation_data = recipe.datasets()
    model.fit(train_data, validation_data=validation_data, epochs=config.epochs,
              steps_per_epoch=config.steps_per_epoch, callbacks=callbacks,
              verbose=config.verbose)
    if best.with_suffix(".index").exists():
        model.load_weights(str(best)).expect_partial()
    return model


# ---------------------------------------------------------------------- the methods
class PartialDualNewcomers:
    """Partial Dual's newcomer: ``FoldIn.user_vector`` of the votes (no survey: Partial Dual
    has none, so 0 votes is the mean customer); rating and served score offset + u . v."""

    name = "Partial Dual (fold-in)"

    def __init__(self, fold_in: FoldIn):
        self.fold_in = fold_in
        self.cold_start = fold_in.cold_start
        self._items = fold_in.item_vectors()

    def query(self, items: np.ndarray, votes: np.ndarray, survey: Mapping[str, str]
              ) -> np.ndarray:
        return self.fold_in.user_vector(items, votes)

    def rating(self, customers: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores [n] of customer vectors [n, d] on item indices [n]."""
        return self.fold_in.offset + np.einsum("nd,nd->n", customers, self._items[items])

    def ranking(self, customers: np.ndarray) -> np.ndarray:
        """Served scores [m, n_items] of customer vectors [m, d]."""
        return self.fold_in.offset + customers @ self._items.T


class StyNetNewcomers:
    """StyNet's newcomer: ``StyNetRecipe.new_customer_query`` of the survey answers and the
    votes (0 votes: the survey alone); rating: the paper's head on [E_c, M_i]; served score:
    E_c . M_i. The mean customer is the mean E_c of the customers the model was fitted on (the
    recipe's reduced split), not of every id (the held-out ids' rows were never trained)."""

    name = "StyNet (survey + votes)"

    def __init__(self, recipe, model):
        self.recipe, self.model = recipe, model
        fitted = np.bincount(recipe.split.train.user, minlength=recipe.dataset.n_users) > 0
        self.cold_start = recipe.user_vectors(model)[fitted].mean(axis=0)
        self._items = recipe.item_vectors(model)

    def query(self, items: np.ndarray, votes: np.ndarray, survey: Mapping[str, str]
              ) -> np.ndarray:
        vector, _ = self.recipe.new_customer_query(
            self.model, survey, list(zip(items.tolist(), votes.tolist())), self.cold_start)
        return vector

    def rating(self, customers: np.ndarray, items: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self.model.rating_from_embeddings(
            tf.constant(customers, tf.float32),
            tf.constant(self._items[items], tf.float32)).numpy()[:, 0]

    def ranking(self, customers: np.ndarray) -> np.ndarray:
        return np.asarray(customers, np.float32) @ self._items.T


def newcomer_method(model_or_fold_in, recipe=None):
    """The curve's view of a fitted method: a ``FoldIn`` (Partial Dual), or a StyNet ``model``
    with its prepared ``recipe``; an object with the ``*Newcomers`` methods (``name``,
    ``cold_start``, ``query``, ``rating``, ``ranking``) is returned as it is."""
    if all(hasattr(model_or_fold_in, name)
           for name in ("name", "cold_start", "query", "rating", "ranking")):
        return model_or_fold_in
    if isinstance(model_or_fold_in, FoldIn):
        return PartialDualNewcomers(model_or_fold_in)
    from tfrec_fashion.models.stynet import StyNet

    if isinstance(model_or_fold_in, StyNet) and recipe is not None:
        return StyNetNewcomers(recipe, model_or_fold_in)
    raise TypeError("newcomer_curve takes a Partial Dual FoldIn or a StyNet model with its "
                    f"recipe. Received: {type(model_or_fold_in).__name__}, recipe={recipe!r}")


# ---------------------------------------------------------------------- the curve
def newcomer_curve(method, data: FashionDataset | Ratings, held_out: np.ndarray,
                   vote_counts: Sequence[int] = VOTE_COUNTS, seed: int = 0
                   ) -> dict[str, list]:
    """Vote AUC and recommendation AUC of held-out customers against the number of votes (the
    module docstring defines both), beside the mean customer and the oracle.

    Args:
        method: a ``FoldIn`` (Partial Dual) or a ``StyNetNewcomers`` (or
            ``newcomer_method(...)`` of either).
        data: the dataset (survey answers, and, on a planted world, the truth for the
            recommendation AUC and the oracle), or its ``Ratings`` alone (vote AUC only).
        held_out: int customers the model was fitted without; each needs more than
            ``max(vote_counts)`` votes.
        vote_counts: numbers of votes to give, ascending.
        seed: seed of each customer's vote order.

    Returns:
        {"method": name, "votes": vote_counts, "auc": [...], "mean_customer_auc": [...],
        "oracle_auc": [...], and with the truth the same three for "recommendation_auc"}; the
        mean customer and the oracle ignore the votes (repeated per count).
    """
    method = newcomer_method(method)
    dataset = data if isinstance(data, FashionDataset) else None
    ratings = dataset.ratings if dataset is not None else data
    vote_counts = [int(k) for k in vote_counts]
    if not vote_counts or min(vote_counts) < 0 or vote_counts != sorted(vote_counts):
        raise ValueError(f"`vote_counts` must be ascending counts >= 0. Received: {vote_counts}")
    truth = None if dataset is None else (dataset.truth or {}).get("user_item_score")
    survey_columns = {} if dataset is None else dict(dataset.users.features or {})
    rng = np.random.default_rng(seed)
    most = max(vote_counts)
    vectors: dict[int, list[np.ndarray]] = {k: [] for k in vote_counts}
    users, items, values, given = [], [], [], []
    for user in held_out:
        rows = np.flatnonzero(ratings.user == user)
        if len(rows) <= most:
            raise ValueError(f"held-out customer {int(user)} has {len(rows)} votes; "
                             f"{most + 1} or more are needed")
        rows = rows[rng.permutation(len(rows))]
        survey = {name: str(column[user]) for name, column in survey_columns.items()}
        for k in vote_counts:
            vectors[k].append(method.query(ratings.item[rows[:k]], ratings.value[rows[:k]],
                                           survey))
        evaluation = rows[most:]
        users.append(np.full(len(evaluation), len(users)))
        items.append(ratings.item[evaluation])
        values.append(ratings.value[evaluation])
        given.append(ratings.item[rows[:most]])
    users, items = np.concatenate(users), np.concatenate(items)
    table = Ratings(users, items, np.concatenate(values))
    held_out = np.asarray(held_out)
    cold = np.tile(method.cold_start, (len(held_out), 1))
    customers = {k: np.stack(vectors[k]) for k in vote_counts}

    def auc(customer_vectors: np.ndarray) -> float:
        return auc_of_scores(method.rating(customer_vectors[users], items), table)

    baseline = auc(cold)
    curve: dict[str, list] = {"method": method.name, "votes": vote_counts,
                              "auc": [auc(customers[k]) for k in vote_counts],
                              "mean_customer_auc": [baseline] * len(vote_counts)}
    if truth is not None:
        truth = np.asarray(truth, np.float64)[held_out]
        margin = truth - np.median(truth, axis=1, keepdims=True)
        curve["oracle_auc"] = [auc_of_scores(margin[users, items], table)] * len(vote_counts)
        ranking = CatalogueRanking(margin > 0, given)
        mean_ranking = ranking.auc(method.ranking(cold))
        curve["recommendation_auc"] = [ranking.auc(method.ranking(customers[k]))
                                       for k in vote_counts]
        curve["mean_customer_recommendation_auc"] = [mean_ranking] * len(vote_counts)
        curve["oracle_recommendation_auc"] = [ranking.auc(margin)] * len(vote_counts)
    return curve


def auc_of_scores(scores: np.ndarray, table: Ratings) -> float:
    """Customer-averaged vote AUC of ``scores`` [n] on the +-1 votes of ``table``."""
    return vote_aucs(scores, table, "")["customer_auc"]


class CatalogueRanking:
    """The recommendation AUC's candidates and labels: customer row c ranks every item but the
    ones in ``given[c]`` (whose votes the method was given), positives ``positive[c]``."""

    def __init__(self, positive: np.ndarray, given: Sequence[np.ndarray]):
        keep = np.ones(positive.shape, bool)
        for row, items in enumerate(given):
            keep[row, items] = False
        self.user, self.item = np.nonzero(keep)
        self.table = Ratings(self.user, self.item,
                             np.where(positive[self.user, self.item], 1.0, -1.0))

    def auc(self, scores: np.ndarray) -> float:
        """Customer-averaged ROC AUC of scores [customers, n_items]."""
        return auc_of_scores(np.asarray(scores)[self.user, self.item], self.table)


# ---------------------------------------------------------------------- the table
def curve_table(curves: Sequence[Mapping[str, list]]) -> str:
    """A Markdown table of one or more ``newcomer_curve`` results (the same vote counts): one
    row per count and metric column per method, then the mean-customer and oracle rows."""
    if not curves:
        raise ValueError("curve_table needs at least one curve")
    votes = list(curves[0]["votes"])
    if any(list(curve["votes"]) != votes for curve in curves):
        raise ValueError("every curve must have the same vote counts: "
                         f"{[list(curve['votes']) for curve in curves]}")
    metrics = [metric for metric in METRICS if all(metric in curve for curve in curves)]
    label = {"auc": "vote AUC", "recommendation_auc": "rec. AUC"}
    header = ["votes"] + [f"{curve['method']} {label[metric]}" for curve in curves
                          for metric in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(name: str, values: list[str]) -> None:
        lines.append("| " + " | ".join([name, *values]) + " |")

    for index, k in enumerate(votes):
        row(str(k) if k else "0 (survey only for StyNet)" if any(
            "StyNet" in curve["method"] for curve in curves) else "0",
            [f"{curve[metric][index]:.3f}" for curve in curves for metric in metrics])
    row("mean customer", [f"{curve[f'mean_customer_{metric}'][0]:.3f}" for curve in curves
                          for metric in metrics])
    if all(f"oracle_{metric}" in curve for curve in curves for metric in metrics):
        row("oracle (planted truth)", [f"{curve[f'oracle_{metric}'][0]:.3f}"
                                       for curve in curves for metric in metrics])
    return "\n".join(lines)


# ---------------------------------------------------------------------- the whole run
def run_newcomer_curves(configs: Sequence, held_out_count: int, directory: str | Path,
                        vote_counts: Sequence[int] = VOTE_COUNTS, seed: int = 0
                        ) -> list[dict[str, list]]:
    """Trains each run config's model (Partial Dual, StyNet) on the first config's world less
    ``held_out_count`` customers (the same ones for every method, drawn with ``seed``), and
    returns each one's ``newcomer_curve`` (the same vote prefixes). Every method learns from
    the first config's ``data``: one world, so the curves compare.

    Args:
        configs: ``RunConfig`` s of ``partial_dual`` or ``stynet`` models.
        held_out_count: customers fitted without and then folded in.
        directory: where the fits keep their checkpoints (a folder per method).
        vote_counts, seed: as ``newcomer_curve``'s (``seed`` also draws the customers).
    """
    from tfrec_fashion.training.recipes import get_recipe

    if not configs:
        raise ConfigError("the newcomer curve needs at least one run config")
    names = [config.model.name for config in configs]
    unknown = sorted(set(names) - {"partial_dual", "stynet"})
    if unknown:
        raise ConfigError(f"the newcomer curve knows partial_dual and stynet models; "
                          f"received {unknown}")
    dataset = configs[0].data.build()
    if not 0 < held_out_count < dataset.n_users:
        raise ConfigError(f"held-out customers must be between 1 and {dataset.n_users - 1} "
                          f"(the world has {dataset.n_users}). Received: {held_out_count}")
    held_out = choose_held_out(dataset.n_users, held_out_count, seed)
    # Checked before any fit: each held-out customer needs votes beyond the largest count.
    votes = np.bincount(dataset.ratings.user, minlength=dataset.n_users)[held_out]
    if votes.min() <= max(vote_counts):
        raise ConfigError(f"held-out customers have as few as {votes.min()} votes; the curve "
                          f"needs more than {max(vote_counts)} (e.g. --set "
                          f"data.ratings_per_user={2 * max(vote_counts)})")
    curves = []
    for config, name in zip(configs, names):
        recipe = get_recipe(config.model, config.train, config.seed)
        recipe.prepare(dataset)
        model = fit_without_customers(recipe, held_out, Path(directory) / name)
        method = (PartialDualNewcomers(recipe.fold_in(model, recipe.served_shrink_to()))
                  if name == "partial_dual" else StyNetNewcomers(recipe, model))
        curves.append(newcomer_curve(method, dataset, held_out, vote_counts, seed))
    return curves
