"""Fold-in: a new customer's Partial Dual embedding from their votes, in closed form, from the
fitted item side alone (issue 24; the "love it or leave it" onboarding of paper 000).

Derivation (``shared/PARTIAL_DUAL.md``; Y is customers x items, rows = customers). The fit ends
at the optimum W* = A B^T of

    P(W) = C/2 ||P_Omega(W - Y)||_F^2 + 1/2 ||W||_*^2,

A (customers) and B (items) its balanced factors, A^T A = B^T B = diag(S), s = sum(S) =
||W*||_* = ||B||_F^2. The squared trace norm is symmetric under transposition, so the partial
dual can equally put the spectrahedron on the *item* side: Theta' = U' U'^T over items, with
U' = B / sqrt(s) at the optimum ((W^T W)^{1/2} / trace, the Theta' the outer problem attains).
With Theta' fixed the inner problem separates over rows, and row c (customer c, observed items
J, centred votes y) is the PARTIAL_DUAL.md closed form with the roles of rows and columns swapped:

    (U'_J U'_J^T + I/C) z_c = y                                   (the inner problem, one row)
    z_c = C y - C^2 U'_J (I_k + C U'_J^T U'_J)^{-1} U'_J^T y      (one k x k solve, Woodbury)
    W*[c, :] = U' U'_J^T z_c = B a,   a = U'_J^T z_c / sqrt(s)

which simplifies to the customer's embedding in A's coordinates,

    a = (B_J^T B_J + (s / C) I)^{-1} B_J^T y.                                          (FI)

Fixed: the item factors B (hence s = ||W*||_*, the item side of Theta') and C. Solved: the one
row's dual z_c, and from it a. The regulariser's role: the squared trace norm couples all rows
through ||W||_*, and for one row with the rest fixed it acts as a ridge of weight ||W*||_* / C on
a (a customer with few votes is shrunk towards the zero customer; with many, a approaches the
least-squares fit to B_J). (FI) is also the optimality condition of W* itself: the subgradient
condition C P_Omega(Y - W*) B = s A, read row by row, is (FI) for each fitted customer, so
folding a *training* customer in from their own training votes returns their fitted row, up to
how far the solver stopped from the optimum (its certified gap). A genuinely new customer is not
exact in the other sense: adding their votes to Y and refitting would move B and s a little (the
coupling through the trace norm); fold-in keeps the item side frozen, as serving must.

Centring. The recipe removes offset (+ b_c + b_i with ``centering: biases``) before solving; a
new customer's bias is the bias model's own closed form given the item biases,
b_c = sum(r - offset - b_i) / (n + bias_l2) (its last alternating update, so again exact for a
training customer), and y = r - offset - b_c - b_J.

Cold start. With no votes (FI) gives a = 0 and b_c = 0, the zero customer; ``FoldIn`` returns
its ``cold_start`` vector, never an error: the zero customer unless given, and from
``PartialDualRecipe.fold_in`` the mean of the fitted customers' vectors (the embeddings file's
rule for unknown customers), so 0 votes is the mean customer.

Centring decides how a newcomer with a handful of votes fares. With ``centering: biases`` the
zero customer of (FI) is offset + b_i (popularity included), and (FI) beats the mean customer
from 5 votes on (planted world, 40 held-out customers, customer-averaged held-out vote AUC,
seeds 2-11: +0.003 to +0.012 at 5 votes, +0.044 to +0.066 at 40). With ``centering: global``
the zero customer is the constant offset and the popularity direction lives in the factors, so
shrinking 5 votes towards zero loses to the mean customer (-0.088 to +0.014 at 5 votes, mean
-0.033, seeds 2-11) although it wins from 20 votes on (and is the best at 40); ``shrink_to="cold_start"`` shrinks towards the mean
customer instead (+0.004 to +0.016 at 5 votes, +0.041 to +0.070 at 40, seeds 2-11).
``training/newcomers.py`` measures this; ``tests/training/test_partial_dual_fold_in.py`` holds it.

May import: numpy only (TensorFlow lives in ``fold_in_graph.py``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

# What (FI) shrinks a customer with few votes towards (``FoldIn.shrink_to``).
SHRINK_TO = ("zero", "cold_start")


@dataclasses.dataclass
class FoldIn:
    """Folds new customers into a fitted Partial Dual model from their (item, vote) pairs.

    The vectors it returns have the layout of the model's embeddings file: ``a`` alone, or
    ``[a, b_c, 1]`` with biases, so ``offset + vector . item_vectors[i]`` is the predicted vote
    and a folded-in customer can be appended to ``data.embeddings.CustomerEmbeddings``.

    Args:
        column_factors: float [n_items, k], the balanced item factors B of the fit.
        C: the fit's loss weight (``P(W) = C/2 ||P_Omega(W - Y)||^2 + 1/2 ||W||_*^2``).
        rating_range: (low, high): a vote outside it is refused.
        offset: the global mean the recipe removed (0 with ``centering: none``).
        item_bias: float [n_items], b_i of ``centering: biases``; None without biases.
        bias_l2: the bias model's ridge weight (b_c = sum(r - offset - b_i) / (n + bias_l2));
            used only with ``item_bias``.
        cold_start: float [d], the vector for a customer with no votes (``d`` = k, or k + 2
            with biases); None: the zero customer of (FI) (``[0, 0, 1]`` with biases).
            ``PartialDualRecipe.fold_in`` passes the mean of the fitted customers' vectors.
        item_ids: str [n_items], to name items by id; None: votes name item indices.
        shrink_to: "zero" (default): (FI) as the solver's equations give it, the ridge centred
            on the zero customer (exact for fitted customers). "cold_start": the same ridge
            centred on ``cold_start`` instead, a = a0 + (B_J^T B_J + (s/C) I)^{-1} B_J^T
            (y - B_J a0) and b_c = b0 + sum(r - offset - b_J - b0) / (n + bias_l2), which
            moves continuously from the mean customer as votes arrive; not the solver's
            optimality condition, so a fitted customer does not get their row back exactly.
            It matters with ``centering: global``, where the population's shared taste
            (popularity) sits in the mean customer's factor and not in biases: see the module
            docstring.

    Example:

        fold_in = recipe.fold_in(model)                     # from a fitted run
        vector = fold_in.user_vector(["i0003", "i0150"], [1, -1])
        scores = fold_in.offset + model.item_vectors() @ vector
    """

    column_factors: np.ndarray
    C: float
    rating_range: tuple[float, float]
    offset: float = 0.0
    item_bias: np.ndarray | None = None
    bias_l2: float = 0.0
    cold_start: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    shrink_to: str = "zero"

    def __post_init__(self) -> None:
        self.column_factors = np.asarray(self.column_factors, np.float64)
        if self.column_factors.ndim != 2 or not np.isfinite(self.column_factors).all():
            raise ValueError("`column_factors` must be a finite [n_items, k] array. Received: "
                             f"shape={self.column_factors.shape}")
        if not (isinstance(self.C, (int, float, np.number)) and math.isfinite(self.C)
                and self.C > 0):
            raise ValueError(f"`C` must be a finite number > 0. Received: C={self.C!r}")
        self.C = float(self.C)
        low, high = (float(v) for v in self.rating_range)
        if not low <= high:
            raise ValueError(f"`rating_range` must be (low, high) with low <= high. Received: "
                             f"rating_range={self.rating_range!r}")
        self.rating_range = (low, high)
        self.offset = float(self.offset)
        n_items = self.n_items
        if self.item_bias is not None:
            self.item_bias = np.asarray(self.item_bias, np.float64)
            if self.item_bias.shape != (n_items,):
                raise ValueError(f"`item_bias` must have shape ({n_items},). Received: "
                                 f"{self.item_bias.shape}")
            if not self.bias_l2 >= 0:
                raise ValueError(f"`bias_l2` must be >= 0. Received: bias_l2={self.bias_l2!r}")
        self.bias_l2 = float(self.bias_l2)
        if self.cold_start is None:
            self.cold_start = self.vector(np.zeros(self.rank), 0.0)
        self.cold_start = np.asarray(self.cold_start, np.float64)
        if self.cold_start.shape != (self.dim,):
            raise ValueError(f"`cold_start` must have shape ({self.dim},). Received: "
                             f"{self.cold_start.shape}")
        if self.shrink_to not in SHRINK_TO:
            raise ValueError(f"`shrink_to` must be one of {SHRINK_TO}. Received: "
                             f"shrink_to={self.shrink_to!r}")
        if self.item_ids is not None:
            self.item_ids = np.asarray(self.item_ids).astype(str)
            if self.item_ids.shape != (n_items,):
                raise ValueError(f"`item_ids` must have one id per item ({n_items}). Received: "
                                 f"shape={self.item_ids.shape}")

    # ------------------------------------------------------------------ sizes
    @property
    def n_items(self) -> int:
        return int(self.column_factors.shape[0])

    @property
    def rank(self) -> int:
        return int(self.column_factors.shape[1])

    @property
    def has_biases(self) -> bool:
        return self.item_bias is not None

    @property
    def dim(self) -> int:
        """Size of the returned vectors: k, or k + 2 with biases."""
        return self.rank + 2 * self.has_biases

    @property
    def trace_norm(self) -> float:
        """s = ||W*||_* = ||B||_F^2 (the factors are balanced: B^T B = diag(S))."""
        return float(np.sum(self.column_factors ** 2))

    @property
    def ridge(self) -> float:
        """The ridge weight s / C that the squared trace norm puts on one row in (FI)."""
        return self.trace_norm / self.C

    # ------------------------------------------------------------------ fold-in
    def item_indices(self, items: Sequence[Any]) -> np.ndarray:
        """int64 [n] item indices of ``items`` (ids with ``item_ids``, else indices); a
        ValueError names the first unknown one."""
        items = np.asarray(items)
        if items.ndim != 1:
            raise ValueError(f"votes must name items in a 1-D list. Received: shape={items.shape}")
        if items.size == 0:
            return np.zeros(0, np.int64)
        if self.item_ids is not None and items.dtype.kind in "USO":
            items = items.astype(str)
            order = np.argsort(self.item_ids)
            position = np.minimum(np.searchsorted(self.item_ids, items, sorter=order),
                                  self.n_items - 1)
            index = order[position]
            unknown = self.item_ids[index] != items
            if unknown.any():
                raise ValueError(f"unknown item {str(items[np.argmax(unknown)])!r}: the model "
                                 f"was fitted on {self.n_items} items and holds no such id")
            return index.astype(np.int64)
        if items.dtype.kind not in "iu":
            raise ValueError("votes must name items by integer index"
                             + (" or by id" if self.item_ids is not None else "")
                             + f". Received: items of dtype {items.dtype}")
        bad = (items < 0) | (items >= self.n_items)
        if bad.any():
            raise ValueError(f"unknown item index {int(items[np.argmax(bad)])}: the model has "
                             f"items 0..{self.n_items - 1}")
        return items.astype(np.int64)

    def check_votes(self, ratings: Sequence[float], n: int) -> np.ndarray:
        """float64 [n] votes, each finite and inside ``rating_range`` (else a ValueError
        naming the value)."""
        ratings = np.asarray(ratings, np.float64).reshape(-1)
        if ratings.shape != (n,):
            raise ValueError(f"one vote per item is needed. Received: {n} items and "
                             f"{ratings.size} votes")
        low, high = self.rating_range
        bad = ~(np.isfinite(ratings) & (ratings >= low) & (ratings <= high))
        if bad.any():
            raise ValueError(f"vote value {float(ratings[np.argmax(bad)])!r} is outside the rating "
                             f"range [{low:g}, {high:g}]")
        return ratings

    def prior(self) -> tuple[np.ndarray, float]:
        """(a0 [k], b0): the customer (FI) shrinks towards, zero or the cold-start one."""
        if self.shrink_to == "zero":
            return np.zeros(self.rank), 0.0
        return self.cold_start[:self.rank], float(self.cold_start[self.rank]) \
            if self.has_biases else 0.0

    def factor_and_bias(self, items: Sequence[Any], ratings: Sequence[float]
                        ) -> tuple[np.ndarray, float]:
        """(a float64 [k], b_c) of (FI) for one customer's votes (shrunk towards ``prior()``);
        the prior itself for no votes. A repeated item counts as a repeated observation."""
        index = self.item_indices(items)
        ratings = self.check_votes(ratings, len(index))
        a0, b0 = self.prior()
        residual = ratings - self.offset
        bias = b0
        if self.has_biases and len(index):
            residual = residual - self.item_bias[index]
            bias = b0 + float(np.sum(residual - b0) / (len(index) + self.bias_l2))
            residual = residual - bias
        B_J = self.column_factors[index]
        gram = B_J.T @ B_J + self.ridge * np.eye(self.rank)  # (FI): B_J^T B_J + (s / C) I
        return a0 + np.linalg.solve(gram, B_J.T @ (residual - B_J @ a0)), bias

    def vector(self, factor: np.ndarray, bias: float) -> np.ndarray:
        """The file layout of (a, b_c): a, or [a, b_c, 1] with biases."""
        factor = np.asarray(factor, np.float64)
        return np.concatenate([factor, [bias, 1.0]]) if self.has_biases else factor

    def user_vector(self, items: Sequence[Any], ratings: Sequence[float]) -> np.ndarray:
        """float64 [d]: the folded-in customer's vector (``cold_start`` for no votes)."""
        if np.size(items) == 0:
            self.check_votes(ratings, 0)
            return self.cold_start.copy()
        return self.vector(*self.factor_and_bias(items, ratings))

    def item_vectors(self) -> np.ndarray:
        """float64 [n_items, d]: B, or [B, 1, b_i] with biases (the embeddings file's items)."""
        if not self.has_biases:
            return self.column_factors
        ones = np.ones((self.n_items, 1))
        return np.hstack([self.column_factors, ones, self.item_bias[:, None]])

    def predict(self, vector: np.ndarray, items: Sequence[Any]) -> np.ndarray:
        """Predicted votes [n] of a customer ``vector`` [d] on ``items``."""
        return self.offset + self.item_vectors()[self.item_indices(items)] @ vector
