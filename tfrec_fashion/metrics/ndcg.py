"""NDCG@k of ranked candidate lists (PAN's ranking metric), equal to ``sklearn.metrics.ndcg_score``.

Gains are the relevance values themselves (linear gain, as sklearn), discounts 1 / log2(rank + 1)
for ranks 1..k and 0 beyond. Tied scores are handled as sklearn does with ``ignore_ties=False``:
every item of a run of tied scores gets the run's mean relevance, spread over the discounts of the
positions the run occupies (McSherry & Najork, 2008), so the result does not depend on the order of
tied items. The ideal DCG sorts the true relevance. A query whose ideal DCG is 0 (no relevant
candidate) scores 0, sklearn's convention.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tfrec_fashion.metrics import _checks


def ndcg_at_k_values(scores: ArrayLike, relevance: ArrayLike, k: int) -> np.ndarray:
    """NDCG@k of every query.

    Args:
        scores: float [n_queries, n_candidates], higher = ranked first. NaN is rejected.
        relevance: float [n_queries, n_candidates], non-negative graded relevance (0 = irrelevant).
        k: positive int; only the top k ranks count (k >= n_candidates means all).

    Returns:
        float [n_queries] in [0, 1]; 0 for a query with no relevant candidate.
    """
    scores = _checks.as_float_array(scores, "scores", 2, "[n_queries, n_candidates]")
    relevance = _checks.as_float_array(relevance, "relevance", 2, "[n_queries, n_candidates]")
    _checks.check_same_shape(scores, "scores", relevance, "relevance")
    k = _checks.check_positive_int(k, "k")
    if (relevance < 0).any():
        raise ValueError(
            f"`relevance` must be non-negative. Received: min value {relevance.min()}"
        )
    n_queries, n_candidates = scores.shape
    if n_candidates == 0:
        raise ValueError("`scores` must have at least one candidate. Received: n_candidates=0")
    discount = 1.0 / np.log2(np.arange(n_candidates) + 2.0)
    discount[k:] = 0.0

    order = np.argsort(-scores, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    sorted_gain = np.take_along_axis(relevance, order, axis=1)
    # Runs of tied scores, numbered across the whole [n_queries, n_candidates] array.
    starts_run = np.ones(scores.shape, dtype=bool)
    starts_run[:, 1:] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    run_id = np.cumsum(starts_run.ravel()) - 1
    run_mean_gain = np.bincount(run_id, weights=sorted_gain.ravel()) / np.bincount(run_id)
    run_discount = np.bincount(run_id, weights=np.broadcast_to(discount, scores.shape).ravel())
    run_query = np.nonzero(starts_run)[0]
    dcg = np.bincount(run_query, weights=run_mean_gain * run_discount, minlength=n_queries)

    ideal_dcg = (-np.sort(-relevance, axis=1) * discount).sum(axis=1)
    return np.where(ideal_dcg > 0, dcg / np.where(ideal_dcg > 0, ideal_dcg, 1.0), 0.0)


def ndcg_at_k(scores: ArrayLike, relevance: ArrayLike, k: int) -> float:
    """Mean over queries of :func:`ndcg_at_k_values` (= ``sklearn.metrics.ndcg_score(..., k=k)``).

    Returns NaN with a ``RuntimeWarning`` when there are no queries.
    """
    values = ndcg_at_k_values(scores, relevance, k)
    return _checks.mean_of_defined(values, "NDCG@k", "there are no queries")
