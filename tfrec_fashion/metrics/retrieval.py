"""Quality of top-k retrieval: same-category precision@k, and an approximate index's recall@k.

Both take the already retrieved top lists (e.g. from a TFRS ``BruteForce`` / ``ScaNN`` index), rank
1 first; only the first ``k`` columns are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tfrec_fashion.metrics import _checks


def precision_at_k(retrieved_labels: ArrayLike, query_labels: ArrayLike, k: int) -> float:
    """Precision@k of same-category retrieval (complete the look's "similar items").

    Args:
        retrieved_labels: [n_queries, >= k], the category of each retrieved item, rank 1 first.
        query_labels: [n_queries], the category of each query.
        k: positive int, at most ``retrieved_labels.shape[1]``.

    Returns:
        Mean over queries of (retrieved items among the first k whose label equals the query's) / k.
        NaN with a ``RuntimeWarning`` when there are no queries.
    """
    retrieved = np.asarray(retrieved_labels)
    queries = np.asarray(query_labels)
    k = _check_top_k(retrieved, "retrieved_labels", k)
    if queries.shape != retrieved.shape[:1]:
        raise ValueError(
            f"`query_labels` must have shape [n_queries]=({retrieved.shape[0]},). "
            f"Received: query_labels.shape={queries.shape}"
        )
    values = (retrieved[:, :k] == queries[:, None]).mean(axis=1)
    return _checks.mean_of_defined(values, "precision@k", "there are no queries")


def recall_at_k_overlap(approx_ids: ArrayLike, exact_ids: ArrayLike, k: int) -> float:
    """Recall@k of an approximate nearest-neighbour index against exact (brute-force) search.

    Args:
        approx_ids: [n_queries, >= k], ids returned by the approximate index, rank 1 first.
        exact_ids: [n_queries, >= k], ids returned by exact search for the same queries.
        k: positive int, at most the number of columns of both.

    Returns:
        Mean over queries of |approx top-k & exact top-k| / k. Ids must be unique within each row's
        top k (a duplicate raises ``ValueError``). NaN with a ``RuntimeWarning`` when there are no
        queries.
    """
    approx = np.asarray(approx_ids)
    exact = np.asarray(exact_ids)
    k = _check_top_k(approx, "approx_ids", k)
    _check_top_k(exact, "exact_ids", k)
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(
            "`approx_ids` and `exact_ids` must have the same number of queries. Received: "
            f"approx_ids.shape={approx.shape}, exact_ids.shape={exact.shape}"
        )
    approx_top = np.sort(approx[:, :k], axis=1)
    exact_top = np.sort(exact[:, :k], axis=1)
    for name, top in (("approx_ids", approx_top), ("exact_ids", exact_top)):
        if (top[:, 1:] == top[:, :-1]).any():
            raise ValueError(f"`{name}` must not repeat an id within a row's top k. Received: {k=}")
    # With unique ids per row, each shared id appears exactly twice in the merged, sorted row.
    merged = np.sort(np.concatenate([approx_top, exact_top], axis=1), axis=1)
    values = (merged[:, 1:] == merged[:, :-1]).sum(axis=1) / k
    return _checks.mean_of_defined(values, "recall@k", "there are no queries")


def _check_top_k(retrieved: np.ndarray, name: str, k: Any) -> int:
    if retrieved.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D [n_queries, >= k]. Received: {name}.shape={retrieved.shape}"
        )
    k = _checks.check_positive_int(k, "k")
    if k > retrieved.shape[1]:
        raise ValueError(
            f"`k` must be at most the number of retrieved columns of `{name}` "
            f"({retrieved.shape[1]}). Received: k={k}"
        )
    return k
