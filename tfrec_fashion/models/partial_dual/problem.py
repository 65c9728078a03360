"""The partial dual of squared-trace-norm matrix completion, on the observed entries only.

    P(W)  = C/2 ||P_Omega(W - Y)||_F^2 + 1/2 ||W||_*^2                        (the primal)
    g(U)  = max_Z <Y, Z> - ||Z||^2 / (2C) - 1/2 ||U^T Z||_F^2,  ||U||_F = 1    (the outer cost)

Z is supported on Omega. For column j with observed rows O_j, U_j = U[O_j] and values y_j, the
inner maximiser solves (U_j U_j^T + I/C) z_j = y_j; by Woodbury, with M_j = I_r + C U_j^T U_j,

    z_j = C y_j - C^2 U_j M_j^{-1} U_j^T y_j                                   (one r x r system)

Every M_j comes from one sparse product (mask^T times the rows' outer products u_i u_i^T), and
the T systems are factored by one batched Cholesky call: O(|Omega| r^2 + T r^3) for the inner
problem, no loop over columns (the triangular solves loop over the r rank indices, each step
vectorised over all T columns). The factors (condition number of M_j <= 1 + C since
||U||_F = 1) are cached for the current U, so each Hessian-vector product, which solves the same
operator, costs O(|Omega| r + T r^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

# Up to this shorter side, sigma_1(Z*) comes from a dense eigensolve of the shorter Gram matrix.
_DENSE_GRAM_SIDE = 300


@dataclass(frozen=True)
class Certificate:
    """The duality-gap certificate at a point U of the spectrahedron.

    D(Z*) <= P* <= P(W(U)) <= g(U), so ``gap`` = g(U) - D(Z*) bounds the suboptimality of both
    g(U) and of the primal W(U) = U U^T Z*.

    Attributes:
        cost: g(U) = 1/2 <Y, Z*>.
        dual_value: D(Z*) = <Y, Z*> - ||Z*||^2 / (2C) - 1/2 sigma_1(Z*)^2.
        gap: g(U) - D(Z*) = 1/2 (sigma_1(Z*)^2 - ||U^T Z*||_F^2); >= 0 up to rounding.
        relative_gap: gap / |g(U)| (0 when both are 0).
        sigma_1: the largest singular value of Z*.
        top_left_vector: float [d], the unit top left singular vector of Z* (the direction that
            the rank increase adds).
    """

    cost: float
    dual_value: float
    gap: float
    relative_gap: float
    sigma_1: float
    top_left_vector: np.ndarray


@dataclass
class _InnerState:
    """The inner solution at one U: U (a private copy), its rows per entry U[rows]
    [|Omega|, r], the Cholesky factors L_j of M_j [T, r, r] (lower) and L_j^T, z [|Omega|] and
    V = Z*^T U [T, r]."""

    U: np.ndarray
    U_rows: np.ndarray
    cholesky: np.ndarray
    cholesky_t: np.ndarray
    z: np.ndarray
    V: np.ndarray


class PartialDualProblem:
    """Cost, gradient, Hessian and certificate of the partial dual, on the observed entries.

    Rows of Y are customers (users), columns are items. Omega is the set of given positions;
    a value 0 at a given position is an observed 0.

    Args:
        rows: int [n], row (customer) index of each observed entry, in [0, d).
        cols: int [n], column (item) index of each observed entry, in [0, T).
        values: float [n], finite observed values y_ij.
        shape: (d, T).
        C: the loss weight, > 0 (C = lambda of a loss lambda * sum of squares / 2).

    Entries are stored row-major (sorted by row, then column); ``rows``, ``cols``, ``values``
    and every per-entry array this class returns (``solve_inner``) follow that order.
    A point U is a float [d, r] matrix; cost, egrad and ehess are defined for any U, the
    certificate and the primal bound for ||U||_F = 1.

    Example:

        problem = PartialDualProblem.from_sparse(ratings, C=1.0)  # ratings: sparse [d, T]
        U = rng.standard_normal((problem.shape[0], 3)); U /= np.linalg.norm(U)
        problem.cost(U), problem.egrad(U), problem.gap(U).relative_gap
    """

    def __init__(self, rows: Any, cols: Any, values: Any, shape: tuple[int, int], C: float):
        self.C = check_positive_float(C, "C")
        self.shape = _check_shape(shape)
        rows, cols, values = _check_entries(rows, cols, values, self.shape)
        order = np.lexsort((cols, rows))
        self.rows, self.cols, self.values = rows[order], cols[order], values[order]
        if np.any((np.diff(self.rows) == 0) & (np.diff(self.cols) == 0)):
            raise ValueError("`rows`, `cols` must not repeat a position (each observed entry "
                             "once); sum duplicates first, or pass a sparse matrix to "
                             "`from_sparse`, which sums them")
        d, T = self.shape
        counts = np.bincount(self.rows, minlength=d)
        self._indptr = np.concatenate([[0], np.cumsum(counts)])
        # Column-major order of the same entries, for Z^T products.
        self._to_column_major = np.lexsort((self.rows, self.cols))
        self._rows_column_major = self.rows[self._to_column_major]
        self._indptr_t = np.concatenate([[0], np.cumsum(np.bincount(self.cols, minlength=T))])
        self._mask_t = self._transposed(np.ones(self.n_observed))
        self._states: list[_InnerState] = []
        self._svd_start: np.ndarray | None = None

    @classmethod
    def from_sparse(cls, Y: Any, C: float) -> PartialDualProblem:
        """The problem on the stored entries of a ``scipy.sparse`` matrix Y [d, T].

        Explicitly stored zeros are observed zeros; duplicate stored entries are summed (SciPy's
        meaning of a COO matrix).
        """
        if not scipy.sparse.issparse(Y):
            raise TypeError("`Y` must be a scipy.sparse matrix or array (customers x items; "
                            "its stored entries are the observed set). Received: "
                            f"{type(Y).__name__}")
        coo = scipy.sparse.coo_matrix(Y, copy=True)
        coo.sum_duplicates()
        return cls(coo.row, coo.col, coo.data, coo.shape, C)

    @property
    def n_observed(self) -> int:
        """|Omega|, the number of observed entries."""
        return int(self.values.size)

    # ------------------------------------------------------------------ inner problem
    def solve_inner(self, U: np.ndarray) -> np.ndarray:
        """Z* on Omega: float [|Omega|], in the order of ``rows``, ``cols``.

        Args:
            U: float [d, r].
        """
        return self._state(U).z.copy()

    def cost(self, U: np.ndarray) -> float:
        """g(U) = 1/2 <Y, Z*>, for U float [d, r]."""
        return 0.5 * float(self.values @ self._state(U).z)

    def egrad(self, U: np.ndarray) -> np.ndarray:
        """Euclidean gradient -Z* Z*^T U = -Z* V, float [d, r] (V = Z*^T U, Danskin)."""
        state = self._state(U)
        return -(self._matrix(state.z) @ state.V)

    def ehess(self, U: np.ndarray, Udot: np.ndarray) -> np.ndarray:
        """Euclidean Hessian of g at U along Udot, float [d, r].

        Differentiating P_Omega(U U^T Z) + Z / C = Y gives the same operator on Zdot with
        right-hand side -P_Omega(Udot (U^T Z) + U (Udot^T Z)); then
        ehess = -[Zdot (U^T Z)^T + Z (U^T Zdot + Udot^T Z)^T].
        """
        state = self._state(U)
        Udot = self._check_point(Udot, "Udot", U.shape)
        z_matrix_t = self._transposed(state.z)
        Vdot = z_matrix_t @ Udot  # Z^T Udot [T, r]
        rhs = -(_rowdot(Udot[self.rows], state.V[self.cols])
                + _rowdot(state.U_rows, Vdot[self.cols]))
        zdot = self._apply_inverse(state, rhs)
        Zdot_t_U = self._transposed(zdot) @ state.U
        return -(self._matrix(zdot) @ state.V + self._matrix(state.z) @ (Zdot_t_U + Vdot))

    # ------------------------------------------------------------------ certificate
    def gap(self, U: np.ndarray) -> Certificate:
        """The duality-gap certificate at U (||U||_F = 1), with sigma_1(Z*) to rounding accuracy.

        At the optimum sigma_1(Z*) is an (at least) rank(W*)-fold singular value (the columns
        of U* lie in the top eigenspace of Z* Z*^T); near it the top singular values form a
        cluster whose spread is of the order of the gap, so sigma_1 must be resolved inside the
        cluster: a dense eigensolve of the shorter Gram matrix (Z Z^T or Z^T Z) when its side is
        at most 300, else ``svds(k=1, tol=0)`` with more Lanczos vectors than the cluster has
        members (falling back to the dense solve if ARPACK does not converge).
        """
        state = self._state(U)
        norm = float(np.linalg.norm(state.U))
        if abs(norm - 1.0) > 1e-8:
            raise ValueError("The certificate needs a point of the spectrahedron: `U` must have "
                             f"unit Frobenius norm. Received: ||U||_F={norm!r}")
        sigma_1, top_left = self._top_singular(state.z, cluster=state.U.shape[1])
        yz = float(self.values @ state.z)
        cost = 0.5 * yz
        gap = 0.5 * (sigma_1 ** 2 - float(np.sum(state.V ** 2)))
        dual = yz - float(state.z @ state.z) / (2.0 * self.C) - 0.5 * sigma_1 ** 2
        relative = gap / abs(cost) if cost != 0.0 else (0.0 if gap == 0.0 else math.inf)
        return Certificate(cost=cost, dual_value=dual, gap=gap, relative_gap=relative,
                           sigma_1=sigma_1, top_left_vector=top_left)

    def primal(self, U: np.ndarray) -> float:
        """P(W) at W = U (U^T Z*), computed directly (loss on Omega plus squared trace norm)."""
        state = self._state(U)
        residual = _rowdot(state.U_rows, state.V[self.cols]) - self.values
        trace_norm = float(np.sum(self.factors(U)[2]))
        return 0.5 * self.C * float(residual @ residual) + 0.5 * trace_norm ** 2

    # ------------------------------------------------------------------ recovery
    def factors(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Balanced factors of W = U V^T (V = Z*^T U): A [d, r], B [T, r], S [r].

        QR U = Q R, SVD R V^T = P S Q2^T, A = Q P S^(1/2), B = Q2 S^(1/2); so A B^T = W,
        A^T A = B^T B = diag(S) and ||W||_* = sum(S). S is in decreasing order.
        """
        state = self._state(U)
        Q, R = np.linalg.qr(state.U)
        P, S, Q2t = np.linalg.svd(R @ state.V.T, full_matrices=False)
        root = np.sqrt(S)
        return (Q @ P) * root, Q2t.T * root, S

    def predict(self, U: np.ndarray, rows: Any, cols: Any) -> np.ndarray:
        """W_ij = u_i . V_j for index arrays ``rows``, ``cols`` (same length): float [n]."""
        state = self._state(U)
        rows, cols = check_indices(rows, cols, self.shape)
        return _rowdot(state.U[rows], state.V[cols])

    # ------------------------------------------------------------------ internals
    def _state(self, U: np.ndarray) -> _InnerState:
        """The inner solution at U, from a two-entry cache (a trial point and the current one)."""
        U = self._check_point(U, "U")
        for index, state in enumerate(self._states):
            if state.U.shape == U.shape and np.array_equal(state.U, U):
                break
        else:
            index, state = len(self._states), self._solve(U.copy())
        # Most recently used first (LRU of two): a trial point never evicts the current one.
        others = self._states[:index] + self._states[index + 1:]
        self._states = [state] + others[:1]
        return state

    def _solve(self, U: np.ndarray) -> _InnerState:
        r = U.shape[1]
        upper_i, upper_j = np.triu_indices(r)
        packed = np.empty((r, r), dtype=np.int64)  # (a, b) -> its upper-triangle position
        packed[upper_i, upper_j] = packed[upper_j, upper_i] = np.arange(upper_i.size)
        # sum over i in O_j of u_i u_i^T, as one sparse product on the upper triangles.
        gram = self._mask_t @ (U[:, upper_i] * U[:, upper_j])  # [T, r(r+1)/2]
        m = self.C * gram[:, packed]  # [T, r, r]
        m[:, np.arange(r), np.arange(r)] += 1.0
        cholesky = np.linalg.cholesky(m)
        state = _InnerState(U=U, U_rows=U[self.rows], cholesky=cholesky,
                            cholesky_t=np.ascontiguousarray(np.swapaxes(cholesky, 1, 2)),
                            z=np.empty(0), V=np.empty(0))
        state.z = self._apply_inverse(state, self.values)
        state.V = self._transposed(state.z) @ U
        return state

    def _apply_inverse(self, state: _InnerState, rhs: np.ndarray) -> np.ndarray:
        """Solves (U_j U_j^T + I/C) x_j = rhs_j for every column j at once (Woodbury)."""
        b = self._transposed(rhs) @ state.U  # U_j^T rhs_j, [T, r]
        s = _cholesky_solve(state.cholesky, state.cholesky_t, b)  # M_j^{-1} U_j^T rhs_j
        return self.C * rhs - self.C ** 2 * _rowdot(state.U_rows, s[self.cols])

    def _matrix(self, values: np.ndarray) -> scipy.sparse.csr_matrix:
        """The d x T sparse matrix with ``values`` on Omega."""
        return scipy.sparse.csr_matrix((values, self.cols, self._indptr), shape=self.shape,
                                       copy=False)

    def _transposed(self, values: np.ndarray) -> scipy.sparse.csr_matrix:
        """The T x d sparse matrix with ``values`` (row-major entry order) transposed."""
        return scipy.sparse.csr_matrix(
            (values[self._to_column_major], self._rows_column_major, self._indptr_t),
            shape=self.shape[::-1], copy=False)

    def _top_singular(self, z: np.ndarray, cluster: int) -> tuple[float, np.ndarray]:
        """sigma_1 and the unit top left singular vector of the sparse Z; ``cluster``: how many
        singular values may sit (nearly) at sigma_1."""
        d, T = self.shape
        Z = self._matrix(z)
        if min(d, T) <= _DENSE_GRAM_SIDE:
            return _top_singular_dense(Z)
        start = self._svd_start
        if start is None:
            start = np.random.default_rng(0).standard_normal(min(d, T))
        lanczos = min(min(d, T) - 1, max(20, 2 * cluster + 20))
        try:
            left, s, right_t = scipy.sparse.linalg.svds(Z, k=1, ncv=lanczos, tol=0, v0=start,
                                                        maxiter=100 * min(d, T))
        except scipy.sparse.linalg.ArpackNoConvergence:
            return _top_singular_dense(Z)
        # svds takes the starting vector on the shorter side: warm-start the next call there.
        self._svd_start = left[:, 0] if d <= T else right_t[0]
        return float(s[0]), left[:, 0]

    def _check_point(self, U: Any, name: str, shape: tuple[int, ...] | None = None
                     ) -> np.ndarray:
        U = np.asarray(U, dtype=float)
        if U.ndim != 2 or U.shape[0] != self.shape[0] or U.shape[1] < 1 or \
                (shape is not None and U.shape != shape):
            expected = shape if shape is not None else f"({self.shape[0]}, r >= 1)"
            raise ValueError(f"`{name}` must have shape {expected}. Received: shape={U.shape}")
        if not np.all(np.isfinite(U)):
            raise ValueError(f"`{name}` must be finite. Received: a NaN or infinite value")
        return U


def check_positive_float(value: Any, name: str) -> float:
    """``value`` as a float, or ValueError unless it is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def _top_singular_dense(Z: scipy.sparse.csr_matrix) -> tuple[float, np.ndarray]:
    """sigma_1 and the top left singular vector of Z from the largest eigenpair of its shorter
    Gram matrix (LAPACK, exact to rounding: an error of about n eps sigma_1^2 in sigma_1^2)."""
    d, T = Z.shape
    gram = (Z @ Z.T if d <= T else Z.T @ Z).toarray()
    n = gram.shape[0]
    eigenvalue, vector = scipy.linalg.eigh(gram, subset_by_index=[n - 1, n - 1])
    sigma = math.sqrt(max(float(eigenvalue[0]), 0.0))
    if d <= T or sigma == 0.0:
        left = vector[:, 0] if d <= T else np.eye(d, 1)[:, 0]
        return sigma, left
    left = Z @ vector[:, 0]
    return sigma, left / np.linalg.norm(left)


def _cholesky_solve(lower: np.ndarray, upper: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solves L_j L_j^T x_j = b_j for all j: lower = L [T, r, r], upper = L^T, b [T, r].

    Forward then back substitution, looping over the r rank indices (NumPy has no batched
    triangular solve); each step is vectorised over the T columns.
    """
    r = b.shape[1]
    y = np.empty_like(b)
    for k in range(r):
        y[:, k] = (b[:, k] - np.einsum("tl,tl->t", lower[:, k, :k], y[:, :k])) / lower[:, k, k]
    x = np.empty_like(b)
    for k in range(r - 1, -1, -1):
        x[:, k] = (y[:, k] - np.einsum("tl,tl->t", upper[:, k, k + 1:], x[:, k + 1:])) \
            / upper[:, k, k]
    return x


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise inner products of two [n, r] arrays: [n]."""
    return np.einsum("ij,ij->i", a, b)


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        d, T = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise ValueError(f"`shape` must be a pair (d, T). Received: shape={shape!r}") from None
    if d < 1 or T < 1:
        raise ValueError(f"`shape` must be positive. Received: shape={shape!r}")
    return d, T


def check_indices(rows: Any, cols: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``rows``, ``cols`` as int64 arrays after checking they are 1-D integer indices into
    ``shape`` of equal length (ValueError naming the problem otherwise)."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    for array, name, size in ((rows, "rows", shape[0]), (cols, "cols", shape[1])):
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"`{name}` must be a 1-D integer array. Received: "
                             f"dtype={array.dtype}, shape={array.shape}")
        if array.size and (array.min() < 0 or array.max() >= size):
            raise ValueError(f"`{name}` must lie in [0, {size}). Received: min={array.min()}, "
                             f"max={array.max()}")
    if rows.size != cols.size:
        raise ValueError("`rows` and `cols` must have the same length. Received: "
                         f"{rows.size} and {cols.size}")
    return rows.astype(np.int64), cols.astype(np.int64)


def _check_entries(rows: Any, cols: Any, values: Any, shape: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = check_indices(rows, cols, shape)
    values = np.asarray(values)
    if values.ndim != 1 or values.size != rows.size or \
            not (np.issubdtype(values.dtype, np.floating) or
                 np.issubdtype(values.dtype, np.integer) or values.dtype == bool):
        raise ValueError("`values` must be a 1-D real array as long as `rows`. Received: "
                         f"dtype={values.dtype}, shape={values.shape}, len(rows)={rows.size}")
    if values.size == 0:
        raise ValueError("The observed set is empty: nothing to complete. Received: 0 entries")
    values = values.astype(float)
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"Observed values must be finite. Received: {int(bad.sum())} NaN or "
                         f"infinite value(s), first at (row {rows[first]}, col {cols[first]}): "
                         f"{values[first]!r}")
    return rows, cols, values
