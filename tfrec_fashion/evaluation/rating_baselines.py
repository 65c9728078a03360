"""Baselines for explicit ratings, the rows every rating model is reported beside.

- **Global mean**: every rating predicted as the training mean.
- **User + item biases**: r_ui ~ mu + b_u + b_i, ridge-regularised, fitted by alternating
  closed-form updates (each is exact given the other; a few sweeps converge).
- **Matrix factorisation**: the biases plus p_u . q_i fitted to their residuals by alternating
  least squares with weighted-lambda regularisation (lambda n_u ||p_u||^2, as ALS-WR, Zhou et
  al. 2008, the usual Netflix-prize form). "Plain": no trace norm, no side information.

Each regularisation weight is chosen on the validation ratings from a small grid, so the
baselines are tuned exactly as far as the models beside them are. Everything is vectorised:
the per-user (per-item) normal equations are built for all users at once with one sparse
product and solved with one batched ``np.linalg.solve``; there is no Python loop over users.

This file needs only NumPy and SciPy.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np
import scipy.sparse

from tfrec_fashion.data.dataset import Ratings

L2_GRID: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
RATING_BASELINES: tuple[str, ...] = ("global_mean", "biases", "mf")


@dataclasses.dataclass
class BiasedFactors:
    """r_ui ~ mu + b_u + b_i + p_u . q_i (factors may be absent), clipped to ``clip``.

    Args:
        mu: global offset. user_bias: [n_users]. item_bias: [n_items].
        user_factors, item_factors: [n_users, k] and [n_items, k], or None.
        clip: (low, high) rating range, or None.
    """

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray | None = None
    item_factors: np.ndarray | None = None
    clip: tuple[float, float] | None = None

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Predicted ratings [n] for int index arrays ``user``, ``item`` [n]."""
        value = self.mu + self.user_bias[user] + self.item_bias[item]
        if self.user_factors is not None:
            value = value + np.einsum("nk,nk->n", self.user_factors[user],
                                      self.item_factors[item])
        return value if self.clip is None else np.clip(value, *self.clip)


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(predicted, float) - actual) ** 2)))


def global_mean(train: Ratings, n_users: int, n_items: int,
                clip: tuple[float, float] | None = None) -> BiasedFactors:
    """The training mean for everything."""
    return BiasedFactors(float(np.mean(train.value)), np.zeros(n_users), np.zeros(n_items),
                         clip=clip)


def biases(train: Ratings, n_users: int, n_items: int, l2: float = 10.0, sweeps: int = 10,
           clip: tuple[float, float] | None = None) -> BiasedFactors:
    """mu + b_u + b_i by alternating ridge updates b_u = sum(r - mu - b_i) / (n_u + l2)."""
    mu = float(np.mean(train.value))
    residual = train.value.astype(np.float64) - mu
    n_user = np.bincount(train.user, minlength=n_users)
    n_item = np.bincount(train.item, minlength=n_items)
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    for _ in range(sweeps):
        item_bias = np.bincount(train.item, residual - user_bias[train.user],
                                minlength=n_items) / (n_item + l2)
        user_bias = np.bincount(train.user, residual - item_bias[train.item],
                                minlength=n_users) / (n_user + l2)
    return BiasedFactors(mu, user_bias, item_bias, clip=clip)


def matrix_factorisation(train: Ratings, n_users: int, n_items: int, rank: int = 10,
                         l2: float = 0.1, bias_l2: float = 10.0, sweeps: int = 15,
                         seed: int = 0, clip: tuple[float, float] | None = None
                         ) -> BiasedFactors:
    """Biases, then p_u . q_i on their residuals by ALS with weighted-lambda regularisation."""
    base = biases(train, n_users, n_items, bias_l2)
    residual = train.value - base.predict(train.user, train.item)
    matrix = scipy.sparse.csr_matrix((residual, (train.user, train.item)),
                                     shape=(n_users, n_items))
    mask = matrix.copy()
    mask.data[:] = 1.0
    rng = np.random.default_rng(seed)
    item_factors = rng.normal(0.0, 0.1, (n_items, rank))
    user_factors = np.zeros((n_users, rank))
    for _ in range(sweeps):
        user_factors = _ridge_rows(matrix, mask, item_factors, l2)
        item_factors = _ridge_rows(matrix.T.tocsr(), mask.T.tocsr(), user_factors, l2)
    return dataclasses.replace(base, user_factors=user_factors, item_factors=item_factors,
                               clip=clip)


def _ridge_rows(matrix: scipy.sparse.csr_matrix, mask: scipy.sparse.csr_matrix,
                fixed: np.ndarray, l2: float) -> np.ndarray:
    """argmin_p sum_j (m_ij - p_i . f_j)^2 + l2 n_i ||p_i||^2 for every row i at once."""
    n, k = matrix.shape[0], fixed.shape[1]
    gram = (mask @ np.einsum("jk,jl->jkl", fixed, fixed).reshape(len(fixed), k * k))
    gram = gram.reshape(n, k, k)
    counts = np.asarray(mask.sum(axis=1)).ravel()
    gram += (l2 * np.maximum(counts, 1.0))[:, None, None] * np.eye(k)
    return np.linalg.solve(gram, (matrix @ fixed)[:, :, None])[:, :, 0]


def tuned_baselines(train: Ratings, validation: Ratings, n_users: int, n_items: int,
                    clip: tuple[float, float] | None = None, rank: int = 10,
                    grid: Sequence[float] = L2_GRID, seed: int = 0
                    ) -> dict[str, tuple[BiasedFactors, dict[str, float]]]:
    """Every baseline of ``RATING_BASELINES``, its L2 chosen on ``validation`` RMSE.

    Returns:
        name -> (fitted predictor, {"l2": chosen, "seconds": fit time over the whole grid}).
    """
    started = time.perf_counter()
    result = {"global_mean": (global_mean(train, n_users, n_items, clip),
                              {"l2": 0.0, "seconds": time.perf_counter() - started})}
    result["biases"] = tuned_biases(train, validation, n_users, n_items, clip, grid)
    bias_l2 = result["biases"][1]["l2"]
    result["mf"] = _choose(validation, grid, lambda l2: matrix_factorisation(
        train, n_users, n_items, rank, l2=l2 / 30.0, bias_l2=bias_l2, seed=seed, clip=clip))
    return result


def tuned_biases(train: Ratings, validation: Ratings, n_users: int, n_items: int,
                 clip: tuple[float, float] | None = None, grid: Sequence[float] = L2_GRID
                 ) -> tuple[BiasedFactors, dict[str, float]]:
    """User + item biases with the L2 of ``grid`` that is best on ``validation`` RMSE (also
    the centring Partial Dual's ``centering: biases`` removes before solving)."""
    return _choose(validation, grid, lambda l2: biases(train, n_users, n_items, l2, clip=clip))


def _choose(validation: Ratings, grid: Sequence[float], fit
            ) -> tuple[BiasedFactors, dict[str, float]]:
    started = time.perf_counter()
    fitted = [(fit(l2), l2) for l2 in grid]
    scores = [rmse(model.predict(validation.user, validation.item), validation.value)
              for model, _ in fitted]
    model, l2 = fitted[int(np.argmin(scores))]
    return model, {"l2": l2, "seconds": time.perf_counter() - started}
