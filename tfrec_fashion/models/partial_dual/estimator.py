"""``PartialDual``: squared-trace-norm matrix completion fitted by Riemannian optimisation of its
partial dual, with a duality-gap certificate and a rank-increasing strategy.

    fit:  for r = rank, rank + 1, ...:
              minimise g(U) over the rank-r spectrahedron (trust regions or CG)
              stop if the certified relative gap <= gap_tolerance
              else U <- [sqrt(1 - t) U, sqrt(t) v], v the top left singular vector of Z*,
                   t = argmin g over [0, 1] (a root of dg/dt)          (d g / dt at 0 = -gap)

Theta_t = (1 - t) U U^T + t v v^T stays on the spectrahedron, and g is convex in Theta with
derivative -gap along it, so every rank increase lowers g. A rank phase ends at the gradient
tolerance, or earlier once ||grad|| <= _RANK_SWITCH * gap: the gap no longer tends to 0 at this
rank (at or above the optimum's rank it shrinks with the gradient), so more iterations at r are
wasted. The reported rank is the numerical rank of the balanced factors of W = U U^T Z*.

Counting: a *solver iteration* is one step of the Riemannian solver (an outer trust-region or
CG iteration), summed over all rank phases; ``max_iterations``, the progress lines ("iter N"),
the stop message and ``iterations_`` all count these. A rank increase is not an iteration: it is
counted separately (``rank_increases_``), and the starting point of each rank phase is recorded
(in ``history_``, with its ``event``) under the number of the iteration it follows.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse

from tfrec_fashion.models.partial_dual.problem import (
    PartialDualProblem,
    check_indices,
    check_positive_float,
)
from tfrec_fashion.models.partial_dual.solvers import (
    IterationRecord,
    SolverResult,
    conjugate_gradient,
    trust_regions,
)
from tfrec_fashion.models.partial_dual.spectrahedron import Spectrahedron

SOLVERS = {"trust_regions": trust_regions, "conjugate_gradient": conjugate_gradient}
# A rank phase ends when ||grad|| <= _RANK_SWITCH * gap (see the module docstring).
_RANK_SWITCH = 1e-2
# The rank-increase search keeps t in [_T_MARGIN, 1 - _T_MARGIN].
_T_MARGIN = 1e-12
# Singular values of W below this fraction of the largest count as zero.
_NUMERICAL_RANK = 1e-8


class PartialDual:
    """Trace-norm-squared matrix completion: min_W C/2 ||P_Omega(W - Y)||^2 + 1/2 ||W||_*^2.

    Y is customers x items (rows = customers, columns = items); its stored entries are the
    observed set. The paper's lambda L(Y, W) + ||W||_*^2 with L the sum of squares is C = lambda
    (the objective here is half of it). The fit ends with W = A B^T, balanced factors
    (A^T A = B^T B = diag(S)), and a certificate: g(U) - D(Z*) bounds the suboptimality.
    Centre the ratings before fitting if you want a mean model; the values are used as given.

    Args:
        C: weight of the squared loss, > 0 (larger: closer fit, higher rank).
        rank: starting rank r of U.
        solver: "trust_regions" (Riemannian trust regions, tCG inner solver) or
            "conjugate_gradient" (Riemannian CG, Hestenes-Stiefel+).
        max_iterations: solver iterations in total, over all ranks (rank increases are not
            iterations).
        gap_tolerance: stop when (g(U) - D(Z*)) / g(U) <= this.
        gradient_tolerance: a rank phase (or the fit, without rank increase) ends when the
            Riemannian gradient norm is at most this (an absolute value, in units of g).
        rank_increase: add a column when a rank phase ends above the gap tolerance.
        max_rank: largest rank allowed (default, and at most, min(d, T)).
        seed: seed of the random starting point.
        verbose: print one line per iteration and one per rank increase.

    Attributes (after ``fit``):
        U_: float [d, r], the final point of the spectrahedron (r: the last rank used).
        row_factors_: A, float [d, rank_] (customers).
        column_factors_: B, float [T, rank_] (items); W = A B^T.
        singular_values_: S, float [rank_], ||W||_* = sum(S).
        cost_, gap_, relative_gap_: g(U), the certified gap and gap / g(U).
        rank_: numerical rank of W (singular values above 1e-8 of the largest).
        iterations_: solver iterations of the fit, over all ranks (``start_iteration`` included).
        rank_increases_: columns this fit added to U (each a rank increase).
        history_: list of ``IterationRecord``: each rank phase's starting point (the first with
            ``event`` "", each later one with its rank increase as ``event``), then one per
            solver iteration; ``iteration`` numbers solver iterations, so a phase's starting
            point repeats the number of the iteration before it.
        stop_reason_: "gap_tolerance", "gradient_tolerance", "max_iterations", "max_rank",
            "callback" or "line_search_failed".
        fit_seconds_: wall time of ``fit``.

    Example:

        model = PartialDual(C=1.0, rank=1, verbose=False).fit(ratings)  # sparse [d, T]
        scores = model.predict(np.array([0, 1]), np.array([5, 7]))      # A_0 . B_5, A_1 . B_7
    """

    def __init__(self, C: float = 1.0, rank: int = 1, solver: str = "trust_regions",
                 max_iterations: int = 200, gap_tolerance: float = 1e-6,
                 gradient_tolerance: float = 1e-8, rank_increase: bool = True,
                 max_rank: int | None = None, seed: int = 0, verbose: bool = True):
        self.C = check_positive_float(C, "C")
        self.rank = _check_int(rank, "rank", 1)
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {sorted(SOLVERS)}. Received: "
                             f"solver={solver!r}")
        self.solver = solver
        self.max_iterations = _check_int(max_iterations, "max_iterations", 0)
        self.gap_tolerance = _check_tolerance(gap_tolerance, "gap_tolerance")
        self.gradient_tolerance = _check_tolerance(gradient_tolerance, "gradient_tolerance")
        self.rank_increase = _check_bool(rank_increase, "rank_increase")
        if max_rank is not None:
            max_rank = _check_int(max_rank, "max_rank", 1)
            if max_rank < self.rank:
                raise ValueError(f"`max_rank` must be >= `rank`. Received: max_rank={max_rank}, "
                                 f"rank={self.rank}")
        self.max_rank = max_rank
        self.seed = _check_int(seed, "seed", 0)
        self.verbose = _check_bool(verbose, "verbose")

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments: ``PartialDual(**model.get_config())`` is a copy."""
        return {"C": self.C, "rank": self.rank, "solver": self.solver,
                "max_iterations": self.max_iterations, "gap_tolerance": self.gap_tolerance,
                "gradient_tolerance": self.gradient_tolerance,
                "rank_increase": self.rank_increase, "max_rank": self.max_rank,
                "seed": self.seed, "verbose": self.verbose}

    # ------------------------------------------------------------------ fit
    def fit(self, Y: Any, U0: np.ndarray | None = None,
            callback: Callable[[IterationRecord], Any] | None = None,
            start_iteration: int = 0) -> PartialDual:
        """Fits W to the stored entries of Y.

        Args:
            Y: scipy.sparse matrix [d, T], customers x items; stored entries (explicit zeros
                included) are the observed ratings, finite.
            U0: optional float [d, r0] starting point (normalised to ||U0||_F = 1); its column
                count r0 is the starting rank (so a checkpointed iterate resumes at its rank).
                Default: a Gaussian [d, rank] one from ``seed``.
            callback: called with every ``IterationRecord``, whose ``U`` is then the iterate
                (to checkpoint it); a true return value stops the fit.
            start_iteration: solver iterations done before ``U0`` (a resumed fit): the
                numbering continues from it and they count against ``max_iterations``.

        Returns:
            self.
        """
        start = time.perf_counter()
        problem = self._problem(Y)
        d, T = problem.shape
        # rank(W) <= min(d, T): a larger max_rank can never be used.
        max_rank = min(d, T, self.max_rank or min(d, T))
        if U0 is None and self.rank > min(d, T):
            raise ValueError(f"`rank` must be <= min(d, T) = {min(d, T)} for Y of shape "
                             f"{(d, T)}. Received: rank={self.rank}")
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable. Received: {type(callback).__name__}")
        U = self._start(U0, d, max_rank)
        run = _FitRun(self, start, callback, _check_int(start_iteration, "start_iteration", 0))
        event = ""
        while True:
            result = self._solve_rank(problem, U, run, event, max_rank)
            U = result.U
            certificate = problem.gap(U)
            stop = result.stop_reason
            if stop == "callback" and run.rank_switch:
                stop = "gradient_tolerance"
            if stop not in ("gradient_tolerance", "line_search_failed") or \
                    certificate.relative_gap <= self.gap_tolerance or not self.rank_increase:
                break
            if U.shape[1] >= max_rank:
                stop = "max_rank"
                break
            U, event = self._increase_rank(problem, U, certificate)
            run.rank_increases += 1
            run.say(event)
        self._finish(problem, U, certificate, run, stop, start)
        return self

    def predict(self, rows: Any, cols: Any) -> np.ndarray:
        """W_ij = A_i . B_j for int index arrays ``rows`` (customers), ``cols`` (items): [n]."""
        if not hasattr(self, "row_factors_"):
            raise RuntimeError("This PartialDual is not fitted yet: call `fit(Y)` first")
        rows, cols = check_indices(rows, cols, (self.row_factors_.shape[0],
                                                self.column_factors_.shape[0]))
        return np.einsum("ij,ij->i", self.row_factors_[rows], self.column_factors_[cols])

    # ------------------------------------------------------------------ internals
    def _problem(self, Y: Any) -> PartialDualProblem:
        if not scipy.sparse.issparse(Y):
            raise TypeError("`Y` must be a scipy.sparse matrix (customers x items; its stored "
                            f"entries are the observed ratings). Received: {type(Y).__name__}")
        if Y.ndim != 2 or min(Y.shape) == 0 or Y.nnz == 0:
            raise ValueError("`Y` is empty: it needs at least one stored (observed) entry. "
                             f"Received: shape={Y.shape}, nnz={Y.nnz}")
        return PartialDualProblem.from_sparse(Y, self.C)

    def _start(self, U0: Any, d: int, max_rank: int) -> np.ndarray:
        if U0 is None:
            return Spectrahedron(d, self.rank).random_point(np.random.default_rng(self.seed))
        U0 = np.asarray(U0, dtype=float)
        if U0.ndim != 2 or U0.shape[0] != d or not 1 <= U0.shape[1] <= max_rank:
            raise ValueError(f"`U0` must have shape (d, r0) with d = {d} and 1 <= r0 <= "
                             f"max_rank = {max_rank}. Received: shape={U0.shape}")
        norm = float(np.linalg.norm(U0))
        if not np.all(np.isfinite(U0)) or norm == 0.0:
            raise ValueError(f"`U0` must be finite and nonzero. Received: ||U0||_F={norm!r}")
        return U0 / norm

    def _solve_rank(self, problem: PartialDualProblem, U: np.ndarray, run: _FitRun,
                    event: str, max_rank: int) -> SolverResult:
        """One rank phase; its records join the fit's history through ``run``."""
        run.begin_phase(event, can_grow=self.rank_increase and U.shape[1] < max_rank)
        remaining = max(self.max_iterations - run.iterations, 0)
        return SOLVERS[self.solver](
            problem, Spectrahedron(*U.shape), U, max_iterations=remaining,
            gradient_tolerance=self.gradient_tolerance, gap_tolerance=self.gap_tolerance,
            callback=run.on_record)

    def _increase_rank(self, problem: PartialDualProblem, U: np.ndarray, certificate: Any
                       ) -> tuple[np.ndarray, str]:
        """U <- [sqrt(1 - t) U, sqrt(t) v], t minimising g(Theta_t) over [0, 1].

        g is convex in t (a maximum of functions affine in Theta), so its minimiser is the root
        of dg/dt = -1/2 (v^T Z_t Z_t^T v - ||U^T Z_t||_F^2) (Danskin), which is -gap at t = 0.
        Brent's root finder on the slope finds t to a relative precision (a bounded
        minimisation of g has an absolute one, too coarse for the small t of late increases)
        and needs fewer evaluations.
        """
        v = certificate.top_left_vector[:, None]
        r = U.shape[1]

        def grown(t: float) -> np.ndarray:
            return np.hstack([math.sqrt(1.0 - t) * U, math.sqrt(t) * v])

        def slope(t: float) -> float:
            egrad = problem.egrad(grown(t))  # -Z_t Z_t^T U_t, column blocks scaled as U_t's
            along_v = -float(v[:, 0] @ egrad[:, r]) / math.sqrt(t)
            along_U = -float(np.vdot(U, egrad[:, :r])) / math.sqrt(1.0 - t)
            return -0.5 * (along_v - along_U)

        low, high = _T_MARGIN, 1.0 - _T_MARGIN  # the slope's formula divides by sqrt(t(1 - t))
        if slope(high) <= 0:
            t = high
        elif slope(low) >= 0:  # a gap at rounding level: nothing to gain
            t = low
        else:
            # rtol: t to 0.1% (relative, so a tiny t is found as precisely as a large one).
            t = scipy.optimize.brentq(slope, low, high, xtol=1e-14, rtol=1e-3)
        U_new = grown(t)
        event = (f"rank {r} -> {r + 1}: added the top singular vector of Z*, t = {t:.3g}, "
                 f"cost {certificate.cost:.6e} -> {problem.cost(U_new):.6e}")
        return U_new, event

    def _finish(self, problem: PartialDualProblem, U: np.ndarray, certificate: Any,
                run: _FitRun, stop: str, start: float) -> None:
        A, B, S = problem.factors(U)
        keep = int(np.sum(S > _NUMERICAL_RANK * S[0])) if S.size and S[0] > 0 else 0
        self.U_ = U
        self.row_factors_, self.column_factors_ = A[:, :keep], B[:, :keep]
        self.singular_values_ = S[:keep]
        self.rank_ = keep
        self.cost_, self.gap_ = certificate.cost, certificate.gap
        self.relative_gap_ = certificate.relative_gap
        self.history_ = run.history
        self.iterations_, self.rank_increases_ = run.iterations, run.rank_increases
        self.stop_reason_ = stop
        self.fit_seconds_ = time.perf_counter() - start
        run.say(f"stopped: {stop} after {run.iterations} solver iterations and "
                f"{run.rank_increases} rank increases, rank {keep}, cost {self.cost_:.6e}, "
                f"gap {self.gap_:.1e} (rel {self.relative_gap_:.1e}), {self.fit_seconds_:.1f} s")


class _FitRun:
    """The fit's running state across rank phases: history, numbering (solver iterations; a
    phase's starting point keeps the number reached), printing, the user's callback and the
    rank-switch test."""

    def __init__(self, model: PartialDual, start: float, callback: Callable | None,
                 start_iteration: int = 0):
        self.model, self.start, self.callback = model, start, callback
        self.history: list[IterationRecord] = []
        self.iterations = start_iteration
        self.rank_increases = 0
        self.offset = start_iteration
        self.event = ""
        self.can_grow = False
        self.rank_switch = False

    def begin_phase(self, event: str, can_grow: bool) -> None:
        self.offset, self.event, self.can_grow = self.iterations, event, can_grow
        self.rank_switch = False

    def on_record(self, record: IterationRecord) -> bool:
        record = dataclasses.replace(
            record, iteration=self.offset + record.iteration,
            seconds=time.perf_counter() - self.start,
            event=self.event if record.iteration == 0 else "")
        self.iterations = record.iteration
        self.history.append(dataclasses.replace(record, U=None))
        self.say(f"iter {record.iteration:4d}  rank {record.rank}  cost {record.cost:.6e}  "
                 f"|grad| {record.grad_norm:.1e}  gap {record.gap:.1e} "
                 f"(rel {record.relative_gap:.1e})  {record.seconds:.1f} s")
        stop = bool(self.callback(record)) if self.callback is not None else False
        if not stop and self.can_grow and record.relative_gap > self.model.gap_tolerance and \
                record.grad_norm <= _RANK_SWITCH * record.gap:
            self.rank_switch = True
            return True
        return stop

    def say(self, line: str) -> None:
        if self.model.verbose:
            print(line, flush=True)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_tolerance(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)
