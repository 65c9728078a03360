"""Customer-level metrics of PSA-Net (paper 000, sec. 6): ROC AUC, AUPRC, Recall@50%, Precision@10.

Every rating i is (customer c_i, model score s_i, label r_i in {+1, -1}); the paper ranks a
customer's ratings by the model's belief in compatibility (distance d_i ascending; here score
descending, higher = more compatible). Section 6.1 computes each metric on ratings(c) of every
customer and averages over customers, so each customer counts equally; the "overall" metrics are
the same numbers on all ratings pooled. One function, :func:`customer_metric_table`, computes the
per-customer table; :func:`overall_metrics` is that table for a single group.

Definitions (per group of ratings, n ratings, P positives, N negatives, sorted by score descending):

- ``roc_auc``: as ``sklearn.metrics.roc_auc_score``; a tied positive/negative pair counts 1/2.
  Undefined (NaN) unless P > 0 and N > 0.
- ``auprc``: average precision exactly as ``sklearn.metrics.average_precision_score``: thresholds
  at the distinct scores, AP = sum over thresholds of (recall step) x (precision at threshold), so
  tied ratings enter together. Undefined (NaN) when P = 0 (sklearn returns 0 with a warning);
  1.0 when N = 0.
- ``recall@50%``: the paper's definition is garbled in the text we have; we read it as the fraction
  of the customer's positives ranked within the top ceil(0.5 n) of the customer's ratings
  (``recall_fraction`` sets the 0.5). Undefined (NaN) when P = 0.
- ``precision@10``: fraction of positives among the top min(10, n) ratings (``precision_k`` sets
  the 10), so a customer with fewer than 10 ratings uses all of them. Always defined.

Ties at a top-m cut-off (both recall and precision) follow one deterministic rule: a run of tied
ratings that straddles the cut-off contributes its positives in proportion to the slots it gets,
``positives_in_run x slots / run_length``, i.e. the expected value under a uniformly random
tie-break. The result does not depend on the input order of the ratings.

Everything is one ``np.lexsort`` by (customer, -score) plus ``np.bincount`` sums over runs of tied
ratings; there is no Python loop over customers or ratings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tfrec_fashion.metrics import _checks

# Why each metric of ``metric_names`` (same order) can be undefined.
_UNDEFINED_WHY = (
    "it needs at least one positive and one negative rating",
    "it needs at least one positive rating",
    "it needs at least one positive rating",
    "it needs at least one rating",
)


def metric_names(recall_fraction: float = 0.5, precision_k: int = 10) -> list[str]:
    """Keys of the metrics in results: ``["roc_auc", "auprc", "recall@50%", "precision@10"]``."""
    return ["roc_auc", "auprc", f"recall@{recall_fraction * 100:g}%", f"precision@{precision_k}"]


def customer_metric_table(
    customer_ids: ArrayLike,
    scores: ArrayLike,
    labels: ArrayLike,
    recall_fraction: float = 0.5,
    precision_k: int = 10,
) -> dict[str, np.ndarray]:
    """Per-customer ROC AUC, AUPRC, Recall@fraction and Precision@k (see the module docstring).

    Args:
        customer_ids: [n_ratings], any sortable ids (ints, strings).
        scores: float [n_ratings], higher = more compatible. NaN is rejected.
        labels: [n_ratings], +1/-1, 1/0 or bool; +1 / 1 / True is "compatible".
        recall_fraction: share of each customer's ratings counted as "top", in (0, 1].
        precision_k: cut-off of Precision@k, a positive int.

    Returns:
        dict of arrays [n_customers], customers in sorted id order: ``"customer_id"``,
        ``"n_ratings"``, ``"n_positive"`` and one float array per name of :func:`metric_names`
        (NaN where the metric is undefined for that customer). Empty input gives empty arrays.
    """
    ids = np.asarray(customer_ids)
    if ids.ndim != 1:
        raise ValueError(f"`customer_ids` must be 1-D [n_ratings]. Received: shape={ids.shape}")
    scores = _checks.as_float_array(scores, "scores", 1, "[n_ratings]")
    positive = _checks.binary_labels(labels, "labels")
    if not ids.shape == scores.shape == positive.shape:
        raise ValueError(
            "`customer_ids`, `scores` and `labels` must have the same length. Received: "
            f"{ids.shape[0]}, {scores.shape[0]}, {positive.shape[0]}"
        )
    if not 0.0 < recall_fraction <= 1.0:
        raise ValueError(
            f"`recall_fraction` must be in (0, 1]. Received: recall_fraction={recall_fraction}"
        )
    precision_k = _checks.check_positive_int(precision_k, "precision_k")

    unique_ids, group = np.unique(ids, return_inverse=True)
    groups = _RatingRuns(group.reshape(-1), scores, positive, len(unique_ids))
    recall_cut = np.ceil(np.round(recall_fraction * groups.n_ratings, 9))
    precision_cut = np.minimum(precision_k, groups.n_ratings)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(
            groups.n_positive > 0, groups.positives_in_top(recall_cut) / groups.n_positive, np.nan
        )
        precision = groups.positives_in_top(precision_cut) / precision_cut
    names = metric_names(recall_fraction, precision_k)
    return {
        "customer_id": unique_ids,
        "n_ratings": groups.n_ratings,
        "n_positive": groups.n_positive,
        names[0]: groups.roc_auc(),
        names[1]: groups.average_precision(),
        names[2]: recall,
        names[3]: precision,
    }


def customer_level_metrics(
    customer_ids: ArrayLike,
    scores: ArrayLike,
    labels: ArrayLike,
    recall_fraction: float = 0.5,
    precision_k: int = 10,
) -> dict[str, Any]:
    """Customer averages of :func:`customer_metric_table` (PSA-Net 6.1: sum_c m(ratings(c)) / |C|).

    Each customer counts equally; customers for whom a metric is undefined (e.g. only one class
    for ROC AUC) are left out of that metric's average and counted in ``"n_skipped"``.

    Returns:
        ``{name: float for name in metric_names(...)}`` plus ``"n_customers"`` (int) and
        ``"n_skipped"`` (``{name: int}``). A metric undefined for every customer is NaN, with a
        ``RuntimeWarning``.
    """
    table = customer_metric_table(customer_ids, scores, labels, recall_fraction, precision_k)
    return _average(table, metric_names(recall_fraction, precision_k), "for every customer")


def overall_metrics(
    scores: ArrayLike, labels: ArrayLike, recall_fraction: float = 0.5, precision_k: int = 10
) -> dict[str, Any]:
    """The same metrics on all ratings pooled (the paper's "overall" metrics): one group.

    Returns the same keys as :func:`customer_level_metrics`, with ``"n_customers"`` = 1 (0 for
    empty input); a metric undefined on the pooled ratings is NaN, with a ``RuntimeWarning``.
    """
    scores = _checks.as_float_array(scores, "scores", 1, "[n_ratings]")
    one_group = np.zeros(scores.shape[0], dtype=np.int64)
    table = customer_metric_table(one_group, scores, labels, recall_fraction, precision_k)
    return _average(table, metric_names(recall_fraction, precision_k), "on the pooled ratings")


def _average(table: dict[str, np.ndarray], names: list[str], scope: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, why in zip(names, _UNDEFINED_WHY):
        what = f"{name} {scope}"
        result[name] = _checks.mean_of_defined(table[name], what, why, stacklevel=4)
    result["n_customers"] = int(table["customer_id"].shape[0])
    result["n_skipped"] = {name: int(np.isnan(table[name]).sum()) for name in names}
    return result


class _RatingRuns:
    """Ratings sorted by (customer, score descending), cut into runs of equal (customer, score).

    Run-level sums (``np.bincount``) give every metric; a run of ties always enters as a whole.
    """

    def __init__(self, group: np.ndarray, scores: np.ndarray, positive: np.ndarray, n_groups: int):
        order = np.lexsort((-scores, group))
        group, scores, positive = group[order], scores[order], positive[order].astype(np.float64)
        starts_run = np.ones(len(group), dtype=bool)
        starts_run[1:] = (group[1:] != group[:-1]) | (scores[1:] != scores[:-1])
        run_id = np.cumsum(starts_run) - 1
        run_start = np.flatnonzero(starts_run)

        self.n_groups = n_groups
        self.n_ratings = np.bincount(group, minlength=n_groups)
        self.n_positive = np.bincount(group, weights=positive, minlength=n_groups).astype(np.int64)
        self.n_negative = self.n_ratings - self.n_positive
        self.run_group = group[run_start]
        self.run_size = np.bincount(run_id).astype(np.float64)
        self.run_positive = np.bincount(run_id, weights=positive)
        self.run_negative = self.run_size - self.run_positive
        # Offsets inside the customer's own ranking (ratings are contiguous per customer).
        group_first = np.cumsum(self.n_ratings) - self.n_ratings
        self.run_offset = (run_start - group_first[self.run_group]).astype(np.float64)
        positives_before_group = np.cumsum(self.n_positive) - self.n_positive
        self.positive_through_run = (
            np.cumsum(self.run_positive) - positives_before_group[self.run_group]
        )
        self.negative_through_run = self.run_offset + self.run_size - self.positive_through_run

    def _sum_by_group(self, run_values: np.ndarray) -> np.ndarray:
        return np.bincount(self.run_group, weights=run_values, minlength=self.n_groups)

    def roc_auc(self) -> np.ndarray:
        # Each positive beats the negatives below its run and ties with the negatives in it.
        negatives_below = self.n_negative[self.run_group] - self.negative_through_run
        wins = self._sum_by_group(self.run_positive * (negatives_below + 0.5 * self.run_negative))
        pairs = self.n_positive * self.n_negative
        return np.where(pairs > 0, wins / np.maximum(pairs, 1), np.nan)

    def average_precision(self) -> np.ndarray:
        # sklearn: sum_n (R_n - R_{n-1}) P_n with one threshold per run of tied scores.
        precision_at_run = self.positive_through_run / (self.run_offset + self.run_size)
        summed = self._sum_by_group(self.run_positive * precision_at_run)
        return np.where(self.n_positive > 0, summed / np.maximum(self.n_positive, 1), np.nan)

    def positives_in_top(self, cut: np.ndarray) -> np.ndarray:
        """Expected positives among each group's top ``cut[g]`` ratings, ties shared pro rata."""
        slots = np.clip(cut[self.run_group] - self.run_offset, 0.0, self.run_size)
        return self._sum_by_group(self.run_positive * slots / self.run_size)
