"""Per-user AUC of the VBPR family (VBPR eq. 3 / DVBPR eq. 3), exact over all unobserved items.

For user u with held-out positives T_u and unobserved items D_u (every item that is neither a test
positive nor observed for u in training/validation),

    AUC_u = 1 / (|T_u| |D_u|) * sum_{i in T_u} sum_{j in D_u} [x_ui > x_uj] + 1/2 [x_ui = x_uj],

and the reported AUC is the mean of AUC_u over users. It is computed from average ranks (the
Mann-Whitney U statistic), so a tie counts 1/2 exactly as in ``sklearn.metrics.roc_auc_score``,
and the cost is one sort per user row, never a loop over (i, j) pairs (a row with a single
positive, the leave-one-out case, needs no sort: one comparison pass). Users are processed in row
batches, so the memory is bounded by ``batch_size x n_items``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse
import scipy.stats
from numpy.typing import ArrayLike

from tfrec_fashion.metrics import _checks

# A dense array (bool / 0-1) or a scipy.sparse matrix / array; nonzero marks an item.
Indicator = ArrayLike | scipy.sparse.sparray | scipy.sparse.spmatrix

_DENSE_BATCH_SIZE = 1024
_UNDEFINED_WHY = "no user has both a test positive and an unobserved (negative) item"


def cold_items(train_counts: ArrayLike, threshold: int = 5) -> np.ndarray:
    """Marks the "cold" items of DVBPR Table III: fewer than ``threshold`` training interactions.

    Args:
        train_counts: int [n_items], number of training interactions per item.
        threshold: an item is cold when its count is strictly below this (paper: 5).

    Returns:
        bool [n_items], usable as ``item_mask`` of :func:`per_user_auc`.
    """
    threshold = _checks.check_positive_int(threshold, "threshold")
    counts = np.asarray(train_counts)
    if counts.ndim != 1:
        raise ValueError(f"`train_counts` must be 1-D [n_items]. Received: shape={counts.shape}")
    return counts < threshold


def per_user_auc_values(
    scores: ArrayLike,
    positives: Indicator,
    exclude: Indicator | None = None,
    item_mask: ArrayLike | None = None,
) -> np.ndarray:
    """AUC_u of every user (VBPR eq. 3), NaN where it is undefined.

    Args:
        scores: float [n_users, n_items], x_ui (higher = preferred). NaN is rejected.
        positives: [n_users, n_items] dense (bool / 0-1) or scipy.sparse; nonzero marks the user's
            held-out test items (one or several per user).
        exclude: optional, same shape and kinds as ``positives``; nonzero marks items observed for
            the user elsewhere (training / validation). They are neither positives nor negatives,
            even if also marked in ``positives``.
        item_mask: optional bool [n_items]; restricts BOTH positives and negatives to these items
            (the "cold items" AUC of DVBPR Table III, see :func:`cold_items`).

    Returns:
        float [n_users]. Negatives are all remaining items of the user; ties count 1/2. NaN for a
        user with no positive or no negative left after ``exclude`` / ``item_mask``.
    """
    scores = _checks.as_float_array(scores, "scores", 2, "[n_users, n_items]")
    return _auc_values_in_batches(
        scores.shape, lambda rows: scores[rows], positives, exclude, item_mask, _DENSE_BATCH_SIZE
    )


def per_user_auc(
    scores: ArrayLike,
    positives: Indicator,
    exclude: Indicator | None = None,
    item_mask: ArrayLike | None = None,
) -> float:
    """Mean over users of :func:`per_user_auc_values` (same arguments), undefined users skipped.

    Returns NaN with a ``RuntimeWarning`` when no user is defined.
    """
    values = per_user_auc_values(scores, positives, exclude, item_mask)
    return _checks.mean_of_defined(values, "per-user AUC", _UNDEFINED_WHY)


def per_user_auc_values_from_embeddings(
    user_vectors: ArrayLike,
    item_vectors: ArrayLike,
    positives: Indicator,
    exclude: Indicator | None = None,
    item_mask: ArrayLike | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """:func:`per_user_auc_values` with x_ui = u . v, scored ``batch_size`` users at a time.

    Args:
        user_vectors: float [n_users, dim]; append a constant 1 to fold item biases in.
        item_vectors: float [n_items, dim].
        positives, exclude, item_mask: as in :func:`per_user_auc_values`.
        batch_size: users scored per chunk; peak memory is about ``batch_size x n_items`` floats.

    Returns:
        float [n_users], identical to the dense version on ``user_vectors @ item_vectors.T``.
    """
    users = _checks.as_float_array(user_vectors, "user_vectors", 2, "[n_users, dim]")
    items = _checks.as_float_array(item_vectors, "item_vectors", 2, "[n_items, dim]")
    if users.shape[1] != items.shape[1]:
        raise ValueError(
            "`user_vectors` and `item_vectors` must have the same dim. Received: "
            f"user_vectors.shape={users.shape}, item_vectors.shape={items.shape}"
        )
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    shape = (users.shape[0], items.shape[0])
    return _auc_values_in_batches(
        shape, lambda rows: users[rows] @ items.T, positives, exclude, item_mask, batch_size
    )


def per_user_auc_from_embeddings(
    user_vectors: ArrayLike,
    item_vectors: ArrayLike,
    positives: Indicator,
    exclude: Indicator | None = None,
    item_mask: ArrayLike | None = None,
    batch_size: int = 1024,
) -> float:
    """Mean of :func:`per_user_auc_values_from_embeddings`; equals :func:`per_user_auc`."""
    values = per_user_auc_values_from_embeddings(
        user_vectors, item_vectors, positives, exclude, item_mask, batch_size
    )
    return _checks.mean_of_defined(values, "per-user AUC", _UNDEFINED_WHY)


def _auc_values_in_batches(
    shape: tuple[int, int],
    score_rows: Callable[[slice], np.ndarray],
    positives: Indicator,
    exclude: Indicator | None,
    item_mask: ArrayLike | None,
    batch_size: int,
) -> np.ndarray:
    """Validates the indicators once, then fills AUC_u batch by batch of user rows."""
    n_users, n_items = shape
    positives = _checks.check_indicator_matrix(positives, "positives", shape)
    if exclude is not None:
        exclude = _checks.check_indicator_matrix(exclude, "exclude", shape)
    allowed_items = np.ones(n_items, dtype=bool)
    if item_mask is not None:
        allowed_items = np.asarray(item_mask)
        if allowed_items.dtype != np.bool_ or allowed_items.shape != (n_items,):
            raise ValueError(
                f"`item_mask` must be a bool array of shape [n_items]=({n_items},). Received: "
                f"dtype={allowed_items.dtype}, shape={allowed_items.shape}"
            )
    values = np.empty(n_users, dtype=np.float64)
    for start in range(0, n_users, batch_size):
        rows = slice(start, min(start + batch_size, n_users))
        candidates = np.broadcast_to(allowed_items, (rows.stop - rows.start, n_items))
        if exclude is not None:
            candidates = candidates & ~_checks.indicator_rows(exclude, rows)
        values[rows] = _auc_of_rows(
            np.asarray(score_rows(rows), dtype=np.float64),
            _checks.indicator_rows(positives, rows),
            candidates,
        )
    return values


def _auc_of_rows(scores: np.ndarray, positives: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """AUC of each row from the rank sum of its positives among its candidate items."""
    positive = positives & candidates
    n_positive = positive.sum(axis=1)
    n_negative = candidates.sum(axis=1) - n_positive
    if np.isnan(scores[candidates]).any():
        raise ValueError("`scores` must not contain NaN (found NaN among the ranked items)")
    wins = np.zeros(len(scores))
    # Rows with one positive (leave-one-out: every row of the implicit protocol) need no sort:
    # the positive's wins are the negatives scored below it plus 1/2 per tie, the same count
    # as its average rank gives, in one pass over the row (the validation AUC every epoch).
    single = n_positive == 1
    if single.any():
        rows = scores[single]
        positive_score = rows[positive[single]][:, None]  # one per row, in row order
        negative = candidates[single] & ~positive[single]
        wins[single] = (((rows < positive_score) & negative).sum(axis=1)
                        + 0.5 * ((rows == positive_score) & negative).sum(axis=1))
    several = n_positive > 1
    if several.any():
        # Non-candidates become NaN, which rankdata leaves out: ranks run 1..n_candidates per
        # row, averaged over ties.
        ranks = scipy.stats.rankdata(np.where(candidates[several], scores[several], np.nan),
                                     method="average", axis=1, nan_policy="omit")
        positive_rank_sum = np.where(positive[several], ranks, 0.0).sum(axis=1)
        # Mann-Whitney U: pairs (i, j) with x_ui > x_uj, plus 1/2 per tie.
        count = n_positive[several]
        wins[several] = positive_rank_sum - count * (count + 1) / 2.0
    pairs = n_positive * n_negative
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, wins / np.maximum(pairs, 1), np.nan)
