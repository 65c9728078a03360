"""Riemannian conjugate gradient and trust-region solvers for min g(U) on the spectrahedron.

Both follow Manopt (Boumal, Mishra, Absil & Sepulchre, JMLR 2014): ``conjugate_gradient`` is
Hestenes-Stiefel+ CG with transport by projection, ``trust_regions`` is the Riemannian
trust-region method of Absil, Baker & Gallivan (2007) with a truncated CG inner solver. Every
iteration computes the duality-gap certificate (one top singular value of the sparse Z*), which
is both the stopping test that matters and the iterate's quality guarantee.

CG's line search. A function-value Armijo test stops working once the decrease per step falls
to the rounding level of g (for this problem near a relative gap of 1e-7). Here each search
starts from the minimiser of the quadratic model along the direction, t0 = -<g, d> / <d, H d>
(one Hessian-vector product), and, when the Armijo test fails by no more than g's rounding
noise, the step is judged on slopes instead: the approximate Armijo condition of Hager & Zhang
(SIAM J. Optim. 2005), phi'(t) <= (2 delta - 1) phi'(0), which is Armijo's test on the
trapezoid-rule estimate of the decrease and stays accurate at any gap.

Solvers take a problem with ``cost``, ``egrad``, ``ehess`` and ``gap`` (``PartialDualProblem``)
and a manifold (``Spectrahedron``), and return ``SolverResult(U, history, stop_reason)``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from tfrec_fashion.models.partial_dual.problem import Certificate

STOP_REASONS = ("gap_tolerance", "gradient_tolerance", "max_iterations", "max_time", "callback",
                "line_search_failed")

_EPS = np.finfo(float).eps
# Hager-Zhang's delta: Armijo's sufficient-decrease constant.
_ARMIJO = 1e-4
# A failed Armijo test by at most this much (relative to |g|) is rounding noise: judge by slope.
_COST_NOISE = 1e-10
_MAX_BACKTRACKS = 30


@dataclass(frozen=True)
class IterationRecord:
    """One solver iteration (iteration 0 is the starting point).

    Attributes:
        iteration: iteration number.
        cost: g(U).
        grad_norm: norm of the Riemannian gradient.
        gap: the duality gap g(U) - D(Z*).
        relative_gap: gap / |g(U)|.
        rank: number of columns of U.
        seconds: wall time since the solver (or the estimator's fit) started.
        step: solver details: CG {"step_size", "beta", "evaluations"}; trust regions {"rho",
            "radius", "accepted", "inner_iterations", "inner_stop"}.
        event: a note such as "rank 2 -> 3" (set by the estimator), else "".
        U: the iterate [d, r], in the record a callback receives (to checkpoint a run); None in
            stored histories, which stay O(iterations) in memory.
    """

    iteration: int
    cost: float
    grad_norm: float
    gap: float
    relative_gap: float
    rank: int
    seconds: float
    step: dict = field(default_factory=dict)
    event: str = ""
    U: np.ndarray | None = field(default=None, repr=False, compare=False)


class SolverResult(NamedTuple):
    """What a solver returns: the final U [d, r], one record per iteration, why it stopped
    (one of ``STOP_REASONS``)."""

    U: np.ndarray
    history: list[IterationRecord]
    stop_reason: str


@dataclass
class _Point:
    """An iterate with everything the solvers reuse: cost, gradients, certificate."""

    U: np.ndarray
    cost: float
    egrad: np.ndarray
    grad: np.ndarray
    grad_norm: float
    certificate: Certificate | None = None


Callback = Callable[[IterationRecord], Any]


def conjugate_gradient(problem: Any, manifold: Any, U0: np.ndarray, *,
                       max_iterations: int = 1000, gradient_tolerance: float = 1e-8,
                       gap_tolerance: float = 1e-9, max_time: float | None = None,
                       callback: Callback | None = None) -> SolverResult:
    """Riemannian conjugate gradient, Hestenes-Stiefel+ (beta clipped at 0).

    The direction restarts at -grad when it is not a descent direction, and when the line
    search fails along it; a failure along -grad ends the run ("line_search_failed").

    Args:
        problem: a ``PartialDualProblem`` (cost, egrad, ehess, gap).
        manifold: a ``Spectrahedron`` of U's shape.
        U0: float [d, r], the starting point (normalised to ||U0||_F = 1).
        max_iterations: iterations at most (0: only evaluate U0).
        gradient_tolerance: stop when the Riemannian gradient norm is at most this.
        gap_tolerance: stop when the certified relative gap is at most this.
        max_time: stop after this many seconds (None: no limit).
        callback: called with each ``IterationRecord`` (its ``U`` set to the iterate); a true
            return value stops the run.

    Returns:
        ``SolverResult(U, history, stop_reason)``.
    """
    monitor = _Monitor(max_iterations, gradient_tolerance, gap_tolerance, max_time, callback)
    x = _evaluate(problem, manifold, _start_point(manifold, U0))
    stop = monitor.check(0, x, {})
    direction = -x.grad
    iteration = 0
    while stop is None:
        iteration += 1
        search = None
        for restart in (False, True):
            slope = manifold.inner(x.U, x.grad, direction)
            if restart or slope >= 0:
                direction, slope = -x.grad, -x.grad_norm ** 2
            search = _line_search(problem, manifold, x, direction, slope)
            if search is not None or np.array_equal(direction, -x.grad):
                break
        if search is None:
            stop = monitor.stop("line_search_failed", iteration, x)
            break
        new, step_size, evaluations = search
        direction, beta = _hestenes_stiefel(manifold, x, new, direction)
        x = new
        stop = monitor.check(iteration, x, {"step_size": step_size, "beta": beta,
                                            "evaluations": evaluations})
    return SolverResult(x.U, monitor.history, stop)


def trust_regions(problem: Any, manifold: Any, U0: np.ndarray, *, max_iterations: int = 1000,
                  gradient_tolerance: float = 1e-8, gap_tolerance: float = 1e-9,
                  max_time: float | None = None, callback: Callback | None = None,
                  max_inner: int = 30, kappa: float = 0.1, theta: float = 1.0,
                  rho_prime: float = 0.1, rho_regularization: float = 1e3,
                  radius_max: float | None = None) -> SolverResult:
    """Riemannian trust regions with a truncated CG (Steihaug-Toint) inner solver, as Manopt's
    ``trustregions``.

    Args:
        problem, manifold, U0, max_iterations, gradient_tolerance, gap_tolerance, max_time,
            callback: as in ``conjugate_gradient``.
        max_inner: tCG iterations at most per outer iteration.
        kappa, theta: tCG stops when ||r|| <= ||r0|| min(||r0||^theta, kappa) (theta = 1:
            locally quadratic convergence).
        rho_prime: a step is accepted when rho = actual / model decrease exceeds this.
        rho_regularization: both decreases get max(1, |g|) eps rho_regularization added, so
            that rho stays meaningful when they are at rounding level (Manopt's trick).
        radius_max: Delta_bar, the largest radius (default: ``manifold.typical_distance``);
            the first radius is Delta_bar / 8.

    Returns:
        ``SolverResult(U, history, stop_reason)``.
    """
    radius_max = manifold.typical_distance if radius_max is None else float(radius_max)
    radius = radius_max / 8
    monitor = _Monitor(max_iterations, gradient_tolerance, gap_tolerance, max_time, callback)
    x = _evaluate(problem, manifold, _start_point(manifold, U0))
    stop = monitor.check(0, x, {})
    iteration = 0
    while stop is None:
        iteration += 1
        eta, h_eta, inner_iterations, inner_stop = _truncated_cg(
            problem, manifold, x, radius, max_inner, kappa, theta)
        U_trial = manifold.retraction(x.U, eta)
        cost_trial = problem.cost(U_trial)
        model_decrease = -(manifold.inner(x.U, eta, x.grad)
                           + 0.5 * manifold.inner(x.U, eta, h_eta))
        offset = max(1.0, abs(x.cost)) * _EPS * rho_regularization
        rho_denominator = model_decrease + offset
        rho = (x.cost - cost_trial + offset) / rho_denominator
        model_decreased = rho_denominator >= 0
        if rho < 0.25 or not model_decreased or math.isnan(rho):
            radius /= 4
        elif rho > 0.75 and inner_stop in ("negative_curvature", "exceeded_trust_region"):
            radius = min(2 * radius, radius_max)
        accepted = bool(model_decreased and rho > rho_prime)
        if accepted:
            x = _evaluate(problem, manifold, U_trial)
        stop = monitor.check(iteration, x, {
            "rho": float(rho), "radius": radius, "accepted": accepted,
            "inner_iterations": inner_iterations, "inner_stop": inner_stop})
    return SolverResult(x.U, monitor.history, stop)


# ---------------------------------------------------------------------- shared pieces
class _Monitor:
    """Validates the stopping criteria, records every iteration and decides when to stop."""

    def __init__(self, max_iterations: int, gradient_tolerance: float, gap_tolerance: float,
                 max_time: float | None, callback: Callback | None):
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, (int, np.integer)) \
                or max_iterations < 0:
            raise ValueError("`max_iterations` must be an integer >= 0. Received: "
                             f"max_iterations={max_iterations!r}")
        for value, name in ((gradient_tolerance, "gradient_tolerance"),
                            (gap_tolerance, "gap_tolerance")):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not value >= 0:
                raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
        if max_time is not None and (isinstance(max_time, bool) or not max_time > 0):
            raise ValueError(f"`max_time` must be > 0 seconds or None. Received: "
                             f"max_time={max_time!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable. Received: {type(callback).__name__}")
        self.max_iterations, self.max_time, self.callback = max_iterations, max_time, callback
        self.gradient_tolerance, self.gap_tolerance = gradient_tolerance, gap_tolerance
        self.history: list[IterationRecord] = []
        self.start = time.perf_counter()

    def record(self, iteration: int, x: _Point, step: dict) -> IterationRecord:
        certificate = x.certificate
        record = IterationRecord(
            iteration=iteration, cost=x.cost, grad_norm=x.grad_norm, gap=certificate.gap,
            relative_gap=certificate.relative_gap, rank=x.U.shape[1],
            seconds=time.perf_counter() - self.start, step=step)
        self.history.append(record)
        return record

    def check(self, iteration: int, x: _Point, step: dict) -> str | None:
        """Records the iteration and returns the stop reason, or None to go on."""
        record = self.record(iteration, x, step)
        reason = None
        if record.relative_gap <= self.gap_tolerance:
            reason = "gap_tolerance"
        elif record.grad_norm <= self.gradient_tolerance:
            reason = "gradient_tolerance"
        elif iteration >= self.max_iterations:
            reason = "max_iterations"
        elif self.max_time is not None and record.seconds >= self.max_time:
            reason = "max_time"
        if self.callback is not None and self.callback(dataclasses.replace(record, U=x.U)) \
                and reason is None:
            reason = "callback"
        return reason

    def stop(self, reason: str, iteration: int, x: _Point) -> str:
        """Records a failed iteration (x unchanged) and returns ``reason``."""
        record = self.record(iteration, x, {"failed": reason})
        if self.callback is not None:
            self.callback(dataclasses.replace(record, U=x.U))
        return reason


def _start_point(manifold: Any, U0: np.ndarray) -> np.ndarray:
    U0 = np.asarray(U0, dtype=float)
    if U0.shape != (manifold.d, manifold.r):
        raise ValueError(f"`U0` must have shape ({manifold.d}, {manifold.r}). Received: "
                         f"shape={U0.shape}")
    norm = float(np.linalg.norm(U0))
    if not np.all(np.isfinite(U0)) or norm == 0.0:
        raise ValueError("`U0` must be finite and nonzero. Received: "
                         f"||U0||_F={norm!r}")
    return U0 / norm


def _evaluate(problem: Any, manifold: Any, U: np.ndarray) -> _Point:
    cost = problem.cost(U)
    egrad = problem.egrad(U)
    grad = manifold.egrad2rgrad(U, egrad)
    return _Point(U=U, cost=cost, egrad=egrad, grad=grad, grad_norm=manifold.norm(U, grad),
                  certificate=problem.gap(U))


def _riemannian_hessian(problem: Any, manifold: Any, x: _Point, xi: np.ndarray) -> np.ndarray:
    return manifold.ehess2rhess(x.U, x.egrad, problem.ehess(x.U, xi), xi)


# ---------------------------------------------------------------------- conjugate gradient
def _line_search(problem: Any, manifold: Any, x: _Point, direction: np.ndarray, slope: float
                 ) -> tuple[_Point, float, int] | None:
    """Backtracking from the quadratic model's minimiser along ``direction``: the accepted
    point, its step size and the number of cost evaluations, or None after _MAX_BACKTRACKS."""
    curvature = manifold.inner(x.U, direction,
                               _riemannian_hessian(problem, manifold, x, direction))
    step = -slope / curvature if curvature > 0 else 1.0 / manifold.norm(x.U, direction)
    noise = _COST_NOISE * abs(x.cost)
    for evaluations in range(1, _MAX_BACKTRACKS + 1):
        U_trial = manifold.retraction(x.U, step * direction)
        cost_trial = problem.cost(U_trial)
        change = cost_trial - x.cost
        accepted = change <= _ARMIJO * step * slope
        if not accepted and change <= noise:
            # Hager & Zhang's approximate Armijo test: Armijo on the trapezoid-rule estimate.
            slope_trial = _slope_along(problem, x.U, direction, step, U_trial)
            accepted = slope_trial <= (2 * _ARMIJO - 1) * slope
        if accepted:
            return _evaluate(problem, manifold, U_trial), step, evaluations
        # Minimiser of the quadratic through phi(0), phi'(0), phi(step), kept in [0.1, 0.5] step.
        quadratic = -slope * step ** 2 / (2 * (change - slope * step))
        step = min(max(quadratic, 0.1 * step), 0.5 * step)
    return None


def _slope_along(problem: Any, U: np.ndarray, direction: np.ndarray, step: float,
                 U_trial: np.ndarray) -> float:
    """phi'(step) for phi(t) = g((U + t d) / ||U + t d||_F)."""
    scale = float(np.linalg.norm(U + step * direction))
    velocity = (direction - np.vdot(U_trial, direction) * U_trial) / scale
    return float(np.vdot(problem.egrad(U_trial), velocity))


def _hestenes_stiefel(manifold: Any, x: _Point, new: _Point, direction: np.ndarray
                      ) -> tuple[np.ndarray, float]:
    """The next direction -grad + beta T(d), beta = max(0, HS), and beta."""
    old_grad = manifold.transport(x.U, new.U, x.grad)
    old_direction = manifold.transport(x.U, new.U, direction)
    difference = new.grad - old_grad
    denominator = manifold.inner(new.U, difference, old_direction)
    beta = manifold.inner(new.U, new.grad, difference) / denominator if denominator != 0 else 0.0
    beta = max(0.0, float(beta))
    return -new.grad + beta * old_direction, beta


# ---------------------------------------------------------------------- trust regions
def _truncated_cg(problem: Any, manifold: Any, x: _Point, radius: float, max_inner: int,
                  kappa: float, theta: float) -> tuple[np.ndarray, np.ndarray, int, str]:
    """Steihaug-Toint CG on the model g + <grad, eta> + 1/2 <eta, H eta>, ||eta|| <= radius.

    Returns eta, H eta, the number of inner iterations and why they stopped.
    """
    inner = lambda a, b: manifold.inner(x.U, a, b)
    eta, h_eta = manifold.zero_vector(x.U), manifold.zero_vector(x.U)
    residual = x.grad
    r_r = inner(residual, residual)
    norm_r0 = math.sqrt(r_r)
    delta = -residual
    e_pe, e_pd, d_pd = 0.0, 0.0, r_r
    model_value = 0.0
    stop = "max_inner"
    j = 0
    for j in range(1, max_inner + 1):
        h_delta = _riemannian_hessian(problem, manifold, x, delta)
        d_hd = inner(delta, h_delta)
        alpha = r_r / d_hd if d_hd != 0 else math.inf
        e_pe_new = e_pe + 2.0 * alpha * e_pd + alpha ** 2 * d_pd
        if d_hd <= 0 or e_pe_new >= radius ** 2:
            # Go to the boundary along delta: tau >= 0 solves ||eta + tau delta|| = radius.
            tau = (-e_pd + math.sqrt(e_pd ** 2 + d_pd * (radius ** 2 - e_pe))) / d_pd
            eta, h_eta = eta + tau * delta, h_eta + tau * h_delta
            stop = "negative_curvature" if d_hd <= 0 else "exceeded_trust_region"
            break
        new_eta, new_h_eta = eta + alpha * delta, h_eta + alpha * h_delta
        new_model_value = inner(new_eta, x.grad) + 0.5 * inner(new_eta, new_h_eta)
        if new_model_value >= model_value:
            stop = "model_increased"
            break
        eta, h_eta, model_value, e_pe = new_eta, new_h_eta, new_model_value, e_pe_new
        residual = manifold.proj(x.U, residual + alpha * h_delta)
        r_r_old, r_r = r_r, inner(residual, residual)
        if math.sqrt(r_r) <= norm_r0 * min(norm_r0 ** theta, kappa):
            stop = "linear_convergence" if kappa < norm_r0 ** theta else \
                "superlinear_convergence"
            break
        beta = r_r / r_r_old
        delta = manifold.proj(x.U, -residual + beta * delta)
        e_pd = beta * (e_pd + alpha * d_pd)
        d_pd = r_r + beta ** 2 * d_pd
    return eta, h_eta, j, stop
