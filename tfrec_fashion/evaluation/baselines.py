"""The papers' non-learned baselines (DVBPR section IV-B), each written as an inner product.

Every baseline returns ``(user_vectors [n_users, d], item_vectors [n_items, d])`` in float64 with
x_ui = u . v, so the same per-user AUC (``metrics.per_user_auc_from_embeddings``) and the same
retrieval index that serve a trained two-tower model serve a baseline exactly; a per-item bias is
a constant 1 column on the user side.

- RAND: "Images are ranked in a random order. By definition this method has AUC = 0.5."
- PopRank: "Images are ranked in order of their popularity within the system."
- VisRank: "Images are ranked according to their average distance to items bought by the user",
  with pre-trained CNN features; see :func:`visrank_baseline` for the squared distance used.

Learned baselines (BPR-MF, VBPR, ...) live in ``models``; this file needs only NumPy and SciPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike

from tfrec_fashion.errors import ConfigError
from tfrec_fashion.metrics import _checks

# Names as the papers' tables print them, in Table III's column order.
BASELINES: tuple[str, ...] = ("RAND", "PopRank", "VisRank")

Vectors = tuple[np.ndarray, np.ndarray]


def random_baseline(n_users: int, n_items: int, seed: int = 0) -> Vectors:
    """RAND: one seeded random order of the items, shared by every user.

    The order is drawn independently of the data, so the expected AUC is 0.5 for any held-out
    items; one shared order keeps d = 1 (a per-user order would need d = min(n_users, n_items)).

    Args:
        n_users, n_items: sizes of the score matrix.
        seed: seed of the item scores (``numpy.random.default_rng``).

    Returns:
        user_vectors float64 [n_users, 1] of ones; item_vectors float64 [n_items, 1] uniform in
        [0, 1) (ties have probability zero).
    """
    n_users = _checks.check_positive_int(n_users, "n_users")
    n_items = _checks.check_positive_int(n_items, "n_items")
    rng = np.random.default_rng(_check_seed(seed))
    return np.ones((n_users, 1)), rng.random((n_items, 1))


def popularity_baseline(train_matrix: Any) -> Vectors:
    """PopRank: every user ranks items by their number of training interactions.

    Args:
        train_matrix: [n_users, n_items] dense or scipy.sparse; nonzero marks a training
            interaction (``ImplicitSplit.train_matrix``). An item's popularity is its number of
            nonzero entries, i.e. ``ImplicitSplit.train_counts``.

    Returns:
        user_vectors float64 [n_users, 1] of ones; item_vectors float64 [n_items, 1] of counts.
    """
    observed = _observed(train_matrix)
    counts = np.asarray(observed.sum(axis=0), dtype=np.float64).reshape(-1, 1)
    return np.ones((observed.shape[0], 1)), counts


def visrank_baseline(train_matrix: Any, item_features: ArrayLike) -> Vectors:
    """VisRank: items closest on average to the user's training items rank first.

    The average distance uses the SQUARED Euclidean distance, which makes VisRank an exact inner
    product. With m_u the mean feature of the user's training items P_u,

        -1/|P_u| sum_{j in P_u} ||f_i - f_j||^2 = 2 f_i . m_u - ||f_i||^2 - c_u,

    where c_u = 1/|P_u| sum_j ||f_j||^2 is the same for every item of u and so never changes u's
    ranking (nor any per-user AUC). Hence user vector [2 m_u, -1] and item vector [f_i, ||f_i||^2].
    The paper does not say which distance; the plain (unsquared) mean distance has no such form,
    would need all |P_u| x n_items distances per user, and cannot be served by a dot-product index.

    A user without training items gets m_u = 0, i.e. items ranked by closeness to the origin of
    the feature space (such users are dropped by ``data.splits.k_core_filter`` in practice).

    Args:
        train_matrix: [n_users, n_items] dense or scipy.sparse; nonzero marks a training
            interaction. Repeated interactions count once (P_u is a set).
        item_features: float [n_items, n_features], e.g. pre-trained CNN features; finite.

    Returns:
        user_vectors float64 [n_users, n_features + 1]; item_vectors float64
        [n_items, n_features + 1].
    """
    observed = _observed(train_matrix)
    features = np.asarray(item_features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != observed.shape[1]:
        raise ValueError(
            f"`item_features` must be 2-D [n_items, n_features] with n_items={observed.shape[1]} "
            f"(columns of `train_matrix`). Received: item_features.shape={features.shape}"
        )
    if not np.isfinite(features).all():
        n_bad = int((~np.isfinite(features)).sum())
        raise ValueError(
            f"`item_features` must be finite. Received: {n_bad} NaN or infinite values"
        )
    n_bought = np.asarray(observed.sum(axis=1), dtype=np.float64).ravel()
    sums = np.asarray(observed @ features)
    means = sums / np.maximum(n_bought, 1.0)[:, None]  # rows of users with no item stay 0
    user_vectors = np.hstack([2.0 * means, -np.ones((observed.shape[0], 1))])
    item_vectors = np.hstack([features, np.sum(features**2, axis=1, keepdims=True)])
    return user_vectors, item_vectors


def baseline_vectors(
    name: str,
    *,
    train_matrix: Any,
    item_features: ArrayLike | None = None,
    seed: int = 0,
) -> Vectors:
    """The (user_vectors, item_vectors) of the baseline called ``name`` (one of ``BASELINES``).

    Args:
        name: "RAND", "PopRank" or "VisRank".
        train_matrix: [n_users, n_items] training interactions (sets the sizes for RAND).
        item_features: float [n_items, n_features]; required by VisRank, ignored otherwise.
        seed: seed of RAND, ignored otherwise.

    Raises:
        ConfigError (a ``ValueError``): unknown ``name``, or VisRank without ``item_features``.
    """
    if name == "RAND":
        n_users, n_items = _observed(train_matrix).shape
        return random_baseline(n_users, n_items, seed=seed)
    if name == "PopRank":
        return popularity_baseline(train_matrix)
    if name == "VisRank":
        if item_features is None:
            raise ConfigError(
                "The VisRank baseline needs `item_features` [n_items, n_features]. "
                "Received: item_features=None"
            )
        return visrank_baseline(train_matrix, item_features)
    raise ConfigError(f"Unknown baseline; known: {', '.join(BASELINES)}. Received: name={name!r}")


def _observed(train_matrix: Any) -> scipy.sparse.csr_array:
    """The training matrix as a float64 CSR 0/1 indicator (nonzero = observed), validated."""
    matrix = train_matrix if scipy.sparse.issparse(train_matrix) else np.asarray(train_matrix)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(
            "`train_matrix` must be a non-empty 2-D [n_users, n_items] matrix. "
            f"Received: train_matrix.shape={matrix.shape}"
        )
    matrix = scipy.sparse.csr_array(matrix)
    if not np.isfinite(matrix.data).all():
        raise ValueError("`train_matrix` must be finite. Received: NaN or infinite entries")
    return scipy.sparse.csr_array((matrix != 0).astype(np.float64))


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer. Received: seed={seed!r}")
    return int(seed)
