"""Partial Dual: the inner closed form against per-column dense solves, derivatives against finite
differences, the spectrahedron's geometry, weak duality, both solvers against an exact conic
solver (cvxpy + Clarabel) with a certified gap, rank increase, balanced factors, clear errors,
and no TensorFlow."""

from __future__ import annotations

import functools
import itertools
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from tfrec_fashion.models.partial_dual import (
    PartialDual,
    PartialDualProblem,
    Spectrahedron,
    conjugate_gradient,
    trust_regions,
)

SOLVERS = {"trust_regions": trust_regions, "conjugate_gradient": conjugate_gradient}


def random_instance(seed: int, d: int = 30, T: int = 20, observed: float = 0.3
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(mask bool [d, T], Y float [d, T]), Gaussian values."""
    rng = np.random.default_rng(seed)
    return rng.random((d, T)) < observed, rng.standard_normal((d, T))


def low_rank_instance() -> tuple[np.ndarray, np.ndarray]:
    """40 x 30, rank 3 plus noise 0.01, 50% observed: at C = 10 the optimum has rank 3."""
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 30))
    Y += 0.01 * rng.standard_normal((40, 30))
    return rng.random((40, 30)) < 0.5, Y


def sparse(mask: np.ndarray, Y: np.ndarray) -> scipy.sparse.csr_matrix:
    rows, cols = np.nonzero(mask)
    return scipy.sparse.csr_matrix((Y[rows, cols], (rows, cols)), shape=Y.shape)


def problem_of(mask: np.ndarray, Y: np.ndarray, C: float) -> PartialDualProblem:
    rows, cols = np.nonzero(mask)
    return PartialDualProblem(rows, cols, Y[rows, cols], Y.shape, C)


def unit(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    U = rng.standard_normal(shape)
    return U / np.linalg.norm(U)


def dense_z(problem: PartialDualProblem, U: np.ndarray) -> np.ndarray:
    """Z* [d, T] by one dense solve of (U_j U_j^T + I/C) z_j = y_j per column (the reference)."""
    Z = np.zeros(problem.shape)
    for j in range(problem.shape[1]):
        entries = problem.cols == j
        observed = problem.rows[entries]
        system = U[observed] @ U[observed].T + np.eye(observed.size) / problem.C
        Z[observed, j] = np.linalg.solve(system, problem.values[entries])
    return Z


def derivative(function, h: float = 1e-3):
    """Fourth-order central difference of t -> function(t) at 0."""
    return (8 * (function(h) - function(-h)) - (function(2 * h) - function(-2 * h))) / (12 * h)


@functools.cache
def cvxpy_reference(kind: str, seed: int, C: float) -> tuple[float, np.ndarray]:
    """Optimal value and W of 0.5 C ||M * (W - Y)||^2 + 0.5 ||W||_*^2 by Clarabel, tight."""
    cp = pytest.importorskip("cvxpy")
    mask, Y = random_instance(seed) if kind == "random" else low_rank_instance()
    W = cp.Variable(Y.shape)
    objective = 0.5 * C * cp.sum_squares(cp.multiply(mask.astype(float), W - Y)) \
        + 0.5 * cp.square(cp.normNuc(W))
    problem = cp.Problem(cp.Minimize(objective))
    # Clarabel's own tolerances; 1e-10 is the tightest at which it still reports "optimal".
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10,
                  tol_ktratio=1e-8, max_iter=500)
    assert problem.status == "optimal", problem.status
    return float(problem.value), W.value


# ---------------------------------------------------------------------- the problem
def test_batched_inner_solve_equals_per_column_dense_solves(assert_close):
    mask, Y = random_instance(0)
    rng = np.random.default_rng(1)
    for C, r in ((1.0, 1), (10.0, 3), (100.0, 5)):
        problem = problem_of(mask, Y, C)
        U = unit(rng, (30, r))
        expected = dense_z(problem, U)[problem.rows, problem.cols]
        # Two solves of U_j U_j^T + I/C (condition number <= 1 + C, as ||U||_F = 1) by
        # different factorisations: each is within ~kappa * n ulps of z, n <= 30 the system size.
        assert_close(problem.solve_inner(U), expected, ulps=30 * (1 + C), err_msg=f"C={C}")


def test_explicit_zeros_are_observed_and_duplicates_summed():
    Y = scipy.sparse.coo_matrix((np.array([0.0, 1.0, 2.0, 3.0]),
                                 (np.array([0, 1, 2, 2]), np.array([0, 1, 2, 2]))), shape=(3, 4))
    problem = PartialDualProblem.from_sparse(Y, C=1.0)
    assert problem.n_observed == 3  # (0, 0) = 0 is observed; (2, 2) = 2 + 3
    np.testing.assert_array_equal(problem.values, [0.0, 1.0, 5.0])
    with pytest.raises(ValueError, match="repeat a position"):
        PartialDualProblem([0, 0], [1, 1], [1.0, 2.0], (2, 2), C=1.0)


@pytest.mark.parametrize("C", [1.0, 10.0])
def test_cost_and_egrad_match_finite_differences(C):
    problem = problem_of(*random_instance(0), C)
    rng = np.random.default_rng(2)
    U = unit(rng, (30, 3))
    for _ in range(3):
        direction = unit(rng, U.shape)
        numeric = derivative(lambda t, d=direction: problem.cost(U + t * d))
        analytic = np.vdot(problem.egrad(U), direction)
        assert abs(numeric - analytic) <= 1e-8 * abs(analytic)


@pytest.mark.parametrize("C", [1.0, 10.0])
def test_ehess_matches_finite_differences_of_egrad(C):
    problem = problem_of(*random_instance(1), C)
    rng = np.random.default_rng(3)
    U = unit(rng, (30, 4))
    for _ in range(3):
        direction = unit(rng, U.shape)
        numeric = derivative(lambda t, d=direction: problem.egrad(U + t * d))
        analytic = problem.ehess(U, direction)
        assert np.linalg.norm(numeric - analytic) <= 1e-8 * np.linalg.norm(analytic)


def test_cost_is_half_the_inner_product_and_z_is_c_times_residual(assert_close):
    problem = problem_of(*random_instance(2), 3.0)
    U = unit(np.random.default_rng(4), (30, 2))
    z = problem.solve_inner(U)
    W = problem.predict(U, problem.rows, problem.cols)
    # z comes from a solve (condition number <= 1 + C), the residual from W = U U^T Z: both are
    # exact to ~kappa * 30 ulps of C |y|, the size of the terms that cancel in y - W.
    assert_close(z, problem.C * (problem.values - W), ulps=30 * (1 + problem.C),
                 scale=problem.C * np.abs(problem.values).max())
    # One sum over the observed entries, in whatever order each side takes: 2 (n - 1) ulps
    # of the sum of |terms| bound any reordering.
    terms = 0.5 * problem.values * z
    assert_close(problem.cost(U), terms.sum(), ulps=2 * (terms.size - 1),
                 scale=np.abs(terms).sum())


def test_weak_duality_on_random_points():
    rng = np.random.default_rng(5)
    for seed, C, r in ((0, 1.0, 1), (1, 10.0, 2), (2, 10.0, 6)):
        problem = problem_of(*random_instance(seed), C)
        U = unit(rng, (30, r))
        certificate = problem.gap(U)
        primal = problem.primal(U)
        assert certificate.dual_value <= primal <= certificate.cost * (1 + 1e-14)
        assert certificate.gap == pytest.approx(certificate.cost - certificate.dual_value,
                                                rel=1e-10)
        sigma = np.linalg.svd(dense_z(problem, U), compute_uv=False)[0]
        assert certificate.sigma_1 == pytest.approx(sigma, rel=1e-12)


def test_sparse_certificate_matches_dense_one():
    # 600 x 500 is above the dense-Gram size: sigma_1 comes from svds(k=1, tol=0).
    rng = np.random.default_rng(6)
    mask = rng.random((600, 500)) < 0.02
    problem = problem_of(mask, rng.standard_normal(mask.shape), 2.0)
    U = unit(rng, (600, 3))
    certificate = problem.gap(U)
    left, sigma, _ = np.linalg.svd(dense_z(problem, U))
    assert certificate.sigma_1 == pytest.approx(sigma[0], rel=1e-12)
    assert abs(certificate.top_left_vector @ left[:, 0]) == pytest.approx(1.0, abs=1e-8)


def test_sparse_certificate_resolves_the_top_cluster_at_the_optimum(monkeypatch, assert_close):
    # At the optimum sigma_1(Z*) is rank(W*)-fold, and the gap is of the order of the cluster's
    # spread: svds must resolve it (and the dense fallback must agree when ARPACK gives up).
    rng = np.random.default_rng(13)
    mask = rng.random((400, 350)) < 0.05
    Y = rng.standard_normal((400, 4)) @ rng.standard_normal((4, 350)) / 2
    Y += 0.3 * rng.standard_normal(Y.shape)
    model = PartialDual(C=3.0, gap_tolerance=1e-10, gradient_tolerance=0.0,
                        verbose=False).fit(sparse(mask, Y))
    assert model.rank_ == 3 and model.relative_gap_ < 1e-9
    problem = problem_of(mask, Y, 3.0)
    sigma = np.linalg.svd(dense_z(problem, model.U_), compute_uv=False)
    assert sigma[2] == pytest.approx(sigma[0], rel=1e-8)  # a 3-fold cluster
    # svds (Lanczos, tol=0) against LAPACK's dense SVD: each is backward stable, a sigma within
    # ~max(m, n) ulps of sigma_1 = ||Z||; the two differ by the sum of both.
    budget = 2 * max(mask.shape)
    assert_close(problem.gap(model.U_).sigma_1, sigma[0], ulps=budget)

    def no_convergence(*args, **kwargs):
        raise scipy.sparse.linalg.ArpackNoConvergence("no convergence", np.empty(0),
                                                      np.empty((0, 0)))

    monkeypatch.setattr(scipy.sparse.linalg, "svds", no_convergence)
    assert_close(problem.gap(model.U_).sigma_1, sigma[0], ulps=budget)


def test_balanced_factors_reproduce_w():
    problem = problem_of(*random_instance(3), 10.0)
    U = unit(np.random.default_rng(7), (30, 4))
    A, B, S = problem.factors(U)
    W = U @ (U.T @ dense_z(problem, U))
    np.testing.assert_allclose(A @ B.T, W, atol=1e-12 * np.abs(W).max())
    np.testing.assert_allclose(A.T @ A, B.T @ B, atol=1e-12 * S[0])
    np.testing.assert_allclose(A.T @ A, np.diag(S), atol=1e-12 * S[0])
    assert S.sum() == pytest.approx(np.linalg.svd(W, compute_uv=False).sum(), rel=1e-12)


def test_movielens_sized_evaluation():
    # 900 x 1600 with 80k observed at r = 10: one cost + egrad + ehess evaluation (its time is
    # printed, not asserted; benchmarks/partial_dual_inner.py compares it with a column loop).
    rng = np.random.default_rng(8)
    positions = rng.choice(900 * 1600, size=80_000, replace=False)
    rows, cols = np.divmod(positions, 1600)
    problem = PartialDualProblem(rows, cols, rng.integers(1, 6, 80_000) - 3.5, (900, 1600), 1.0)
    U, a, b = unit(rng, (900, 10)), unit(rng, (900, 10)), unit(rng, (900, 10))
    start = time.perf_counter()
    cost, egrad, hessian_a = problem.cost(U), problem.egrad(U), problem.ehess(U, a)
    print(f"900 x 1600, 80k observed, r = 10: cost + egrad + ehess "
          f"{time.perf_counter() - start:.3f} s")
    assert cost > 0 and egrad.shape == (900, 10)
    # The Euclidean Hessian is symmetric: <H[a], b> = <a, H[b]>.
    assert np.vdot(hessian_a, b) == pytest.approx(np.vdot(a, problem.ehess(U, b)), rel=1e-9)


# ---------------------------------------------------------------------- the manifold
def test_eigh_sylvester_solve_equals_scipy_and_stays_defined_when_singular(assert_close):
    manifold = Spectrahedron(30, 4)
    rng = np.random.default_rng(9)
    U, eta = manifold.random_point(rng), rng.standard_normal((30, 4))
    eta_sphere = eta - np.vdot(eta, U) * U
    gram, skew = U.T @ U, U.T @ eta_sphere - eta_sphere.T @ U
    omega = scipy.linalg.solve_sylvester(gram, gram, skew)
    # eigh against Bartels-Stewart on a 4 x 4 Sylvester equation, then 4-term products: a
    # few ulps per step, times the condition of the Gram matrix (its eigenvalues sum to 1).
    condition = np.linalg.cond(gram)
    assert_close(manifold.proj(U, eta), eta_sphere - U @ omega, ulps=64 * condition)
    singular = U.copy()
    singular[:, 3] = 0.0  # rank-deficient U
    singular /= np.linalg.norm(singular)
    xi = manifold.proj(singular, eta)
    assert np.all(np.isfinite(xi))
    # Entries small by cancellation: judged against the size of their terms, |U| |xi|
    # (Cauchy-Schwarz); 30- and 120-term sums, 2 (n - 1) ulps of that size.
    size = np.linalg.norm(singular) * np.linalg.norm(xi)
    assert_close(singular.T @ xi, xi.T @ singular, ulps=2 * 29, scale=size)
    assert_close(np.vdot(singular, xi), 0.0, ulps=2 * 119, scale=size)


def test_projection_is_a_horizontal_projector(assert_close):
    manifold = Spectrahedron(30, 3)
    rng = np.random.default_rng(10)
    U = manifold.random_point(rng)
    xi = manifold.proj(U, rng.standard_normal((30, 3)))
    # What should vanish is judged against the size of its terms, |U| |xi| (Cauchy-Schwarz),
    # with 2 (n - 1) ulps for a sum of n terms; the projection's own 3 x 3 solve adds a few
    # ulps times the Gram matrix's condition.
    size = np.linalg.norm(U) * np.linalg.norm(xi)
    condition = np.linalg.cond(U.T @ U)
    assert_close(np.vdot(U, xi), 0.0, ulps=2 * 89 * condition, scale=size)
    assert_close(U.T @ xi, xi.T @ U, ulps=2 * 29 * condition, scale=size)  # horizontal
    assert_close(manifold.proj(U, xi), xi, ulps=64 * condition)  # idempotent
    vertical = U @ np.array([[0.0, 1.0, 2.0], [-1.0, 0.0, 3.0], [-2.0, -3.0, 0.0]])
    assert_close(manifold.proj(U, vertical), 0.0, ulps=64 * condition,
                 scale=np.abs(vertical).max())
    moved = manifold.retraction(U, xi)
    # A 90-term sum of squares on each side (the retraction's and norm's), then a square root.
    assert_close(np.linalg.norm(moved), 1.0, ulps=2 * 89)
    carried = manifold.transport(U, moved, xi)
    assert_close(moved.T @ carried, carried.T @ moved, ulps=2 * 29 * condition,
                 scale=np.linalg.norm(moved) * np.linalg.norm(carried))


def test_riemannian_gradient_and_hessian_are_consistent():
    problem = problem_of(*random_instance(4), 10.0)
    manifold = Spectrahedron(30, 3)
    rng = np.random.default_rng(11)
    U = manifold.random_point(rng)
    egrad = problem.egrad(U)
    grad = manifold.egrad2rgrad(U, egrad)
    np.testing.assert_allclose(manifold.proj(U, grad), grad, atol=1e-12 * np.abs(grad).max())

    def hessian(xi):
        return manifold.ehess2rhess(U, egrad, problem.ehess(U, xi), xi)

    a, b = manifold.random_tangent(U, rng), manifold.random_tangent(U, rng)
    h_a, h_b = hessian(a), hessian(b)
    np.testing.assert_allclose(manifold.proj(U, h_a), h_a, atol=1e-11 * np.abs(h_a).max())
    assert np.vdot(h_a, b) == pytest.approx(np.vdot(a, h_b), rel=1e-10)
    # Along the (second-order) retraction, phi(t) = g(R_U(t a)) has phi'(0) = <grad, a>,
    # phi''(0) = <Hess[a], a>.
    phi = lambda t: problem.cost(manifold.retraction(U, t * a))
    assert derivative(phi) == pytest.approx(np.vdot(grad, a), rel=1e-8)
    h = 1e-2
    second = (16 * (phi(h) + phi(-h)) - (phi(2 * h) + phi(-2 * h)) - 30 * phi(0.0)) / (12 * h * h)
    assert second == pytest.approx(np.vdot(h_a, a), rel=1e-6)


# ---------------------------------------------------------------------- the solvers
@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("seed,C", [(0, 1.0), (0, 10.0), (1, 1.0), (1, 10.0)])
def test_fit_matches_cvxpy_with_a_certified_gap(solver, seed, C):
    optimum, W_star = cvxpy_reference("random", seed, C)
    mask, Y = random_instance(seed)
    model = PartialDual(C=C, solver=solver, gap_tolerance=1e-10, gradient_tolerance=0.0,
                        max_iterations=2000, verbose=False).fit(sparse(mask, Y))
    assert model.stop_reason_ == "gap_tolerance"
    assert model.relative_gap_ < 1e-9
    assert model.cost_ == pytest.approx(optimum, rel=1e-8)
    problem = problem_of(mask, Y, C)
    assert problem.primal(model.U_) == pytest.approx(optimum, rel=1e-8)
    s_star = np.linalg.svd(W_star, compute_uv=False)
    assert model.rank_ == int(np.sum(s_star > 1e-6 * s_star[0]))


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_solvers_at_the_optimum_rank_reach_the_gap_from_a_random_start(solver):
    optimum, W_star = cvxpy_reference("random", 0, 10.0)
    s_star = np.linalg.svd(W_star, compute_uv=False)
    rank = int(np.sum(s_star > 1e-6 * s_star[0]))
    problem = problem_of(*random_instance(0), 10.0)
    manifold = Spectrahedron(30, rank)
    records = []
    result = SOLVERS[solver](problem, manifold, manifold.random_point(np.random.default_rng(12)),
                             max_iterations=1000, gradient_tolerance=0.0, gap_tolerance=1e-10,
                             callback=records.append)
    assert result.stop_reason == "gap_tolerance"
    assert records == result.history and records[0].iteration == 0
    certificate = problem.gap(result.U)
    assert certificate.relative_gap < 1e-9
    assert certificate.cost == pytest.approx(optimum, rel=1e-8)
    costs = [record.cost for record in result.history]
    assert all(b <= a * (1 + 1e-10) for a, b in itertools.pairwise(costs))  # monotone


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_rank_increase_from_one_finds_the_optimum_rank(solver, capsys):
    optimum, W_star = cvxpy_reference("low_rank", 0, 10.0)
    s_star = np.linalg.svd(W_star, compute_uv=False)
    rank = int(np.sum(s_star > 1e-6 * s_star[0]))
    assert rank == 3 and s_star[3] < 1e-9 * s_star[0]  # the instance is what it claims
    model = PartialDual(C=10.0, rank=1, solver=solver, gap_tolerance=1e-10,
                        gradient_tolerance=0.0, max_iterations=1000,
                        verbose=True).fit(sparse(*low_rank_instance()))
    assert model.rank_ == rank
    assert model.relative_gap_ < 1e-9 and model.cost_ == pytest.approx(optimum, rel=1e-8)
    np.testing.assert_allclose(model.singular_values_, s_star[:3], rtol=1e-6)
    events = [record.event for record in model.history_ if record.event]
    assert events[0].startswith("rank 1 -> 2") and events[1].startswith("rank 2 -> 3")
    for before, after in itertools.pairwise(model.history_):
        if after.event:  # each rank increase lowers g (g is convex along Theta_t, slope -gap)
            assert after.rank == before.rank + 1 and after.cost < before.cost
    out = capsys.readouterr().out
    assert "rank 1 -> 2" in out and "stopped: gap_tolerance" in out
    assert "iter    0  rank 1  cost" in out


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_iterations_are_solver_steps_and_rank_increases_are_counted_apart(solver, capsys):
    """One count everywhere: the progress lines, the stop message, ``iterations_``, the history's
    numbering and the ``max_iterations`` budget; rank increases are not iterations."""
    Y = sparse(*low_rank_instance())
    settings = {"C": 10.0, "rank": 1, "solver": solver, "gap_tolerance": 1e-10,
                "gradient_tolerance": 0.0}
    model = PartialDual(**settings, max_iterations=1000, verbose=True).fit(Y)
    out = capsys.readouterr().out
    assert model.rank_increases_ == 2 == sum(1 for record in model.history_ if record.event)
    # Records: the start, each rank phase's starting point, then one per solver iteration.
    assert model.iterations_ == len(model.history_) - 1 - model.rank_increases_
    assert model.iterations_ == model.history_[-1].iteration
    assert f"after {model.iterations_} solver iterations and 2 rank increases, rank 3" in out
    assert int(re.findall(r"^iter +(\d+)", out, re.M)[-1]) == model.iterations_
    # The budget counts the same iterations.
    short = PartialDual(**settings, max_iterations=model.iterations_ - 1, verbose=False).fit(Y)
    assert short.stop_reason_ == "max_iterations"
    assert short.iterations_ == short.history_[-1].iteration == model.iterations_ - 1
    # A resumed fit continues the numbering, and the iterations before count in its budget.
    saved = []
    half = PartialDual(**settings, max_iterations=model.iterations_ // 2, verbose=False).fit(
        Y, callback=lambda record: saved.append(record.U))
    resumed = PartialDual(**settings, max_iterations=half.iterations_ + 3, verbose=False).fit(
        Y, U0=saved[-1], start_iteration=half.iterations_)
    assert resumed.history_[0].iteration == half.iterations_
    assert resumed.iterations_ == resumed.history_[-1].iteration == half.iterations_ + 3
    assert resumed.stop_reason_ == "max_iterations"


def test_estimator_factors_and_predictions(assert_close):
    mask, Y = random_instance(2)
    model = PartialDual(C=10.0, verbose=False).fit(sparse(mask, Y))
    A, B, S = model.row_factors_, model.column_factors_, model.singular_values_
    assert A.shape == (30, model.rank_) and B.shape == (20, model.rank_)
    problem = problem_of(mask, Y, 10.0)
    W = model.U_ @ (model.U_.T @ dense_z(problem, model.U_))
    np.testing.assert_allclose(A @ B.T, W, atol=1e-10 * np.abs(W).max())
    np.testing.assert_allclose(A.T @ A, B.T @ B, atol=1e-12 * S[0])
    assert S.sum() == pytest.approx(np.linalg.svd(W, compute_uv=False).sum(), rel=1e-10)
    rows, cols = np.array([0, 5, 29]), np.array([0, 19, 3])
    # A B^T (QR of U, SVD of R V^T: backward stable) against U U^T Z: each within ~(d + T)
    # ulps of ||W||_2 = S[0].
    assert_close(model.predict(rows, cols), W[rows, cols], ulps=2 * sum(W.shape), scale=S[0])
    assert model.relative_gap_ <= 1e-6 and model.stop_reason_ == "gap_tolerance"
    assert PartialDual(**model.get_config()).get_config() == model.get_config()


def test_callback_sees_the_iterate_and_can_stop_the_fit(assert_close):
    mask, Y = random_instance(0)
    seen = []
    model = PartialDual(C=10.0, verbose=False).fit(
        sparse(mask, Y), callback=lambda record: seen.append(record) or len(seen) == 3)
    assert model.stop_reason_ == "callback" and len(seen) == 3 == len(model.history_)
    problem = problem_of(mask, Y, 10.0)
    for record, stored in zip(seen, model.history_):
        assert record.U.shape == (30, record.rank) and stored.U is None
        assert_close(problem.cost(record.U), record.cost)  # the same function of U


def test_fit_resumes_from_a_saved_iterate_at_its_rank(assert_close):
    mask, Y = random_instance(0)
    saved = []
    PartialDual(C=10.0, max_iterations=25, verbose=False).fit(
        sparse(mask, Y), callback=lambda record: saved.append(record.U))
    assert saved[-1].shape[1] > 1  # the interrupted run had grown its rank
    resumed = PartialDual(C=10.0, rank=1, verbose=False).fit(sparse(mask, Y), U0=saved[-1])
    assert resumed.history_[0].rank == saved[-1].shape[1]
    assert_close(resumed.history_[0].cost,
                 PartialDualProblem.from_sparse(sparse(mask, Y), 10.0).cost(saved[-1]))
    assert resumed.stop_reason_ == "gap_tolerance" and resumed.relative_gap_ <= 1e-6


# ---------------------------------------------------------------------- errors and imports
def test_bad_inputs_raise_clear_errors():
    mask, Y = random_instance(0)
    good = sparse(mask, Y)
    with pytest.raises(TypeError, match="scipy.sparse"):
        PartialDual(verbose=False).fit(Y)
    bad = good.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        PartialDual(verbose=False).fit(bad)
    bad.data[3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        PartialDual(verbose=False).fit(bad)
    with pytest.raises(ValueError, match="empty"):
        PartialDual(verbose=False).fit(scipy.sparse.csr_matrix((5, 4)))
    with pytest.raises(ValueError, match=r"`U0` must have shape \(d, r0\) with d = 30 and "
                       r"1 <= r0 <= max_rank = 20. Received: shape=\(29, 2\)"):
        PartialDual(rank=2, verbose=False).fit(good, U0=np.ones((29, 2)))
    with pytest.raises(ValueError, match=r"`U0` must have shape .*max_rank = 4"):
        PartialDual(max_rank=4, verbose=False).fit(good, U0=np.ones((30, 5)))
    with pytest.raises(ValueError, match=r"`C` must be a finite number > 0. Received: C=-1.0"):
        PartialDual(C=-1.0)
    with pytest.raises(ValueError, match="`solver` must be one of .*Received: solver='newton'"):
        PartialDual(solver="newton")
    with pytest.raises(ValueError, match="`rank` must be an integer >= 1"):
        PartialDual(rank=0)
    with pytest.raises(ValueError, match="`max_rank` must be >= `rank`"):
        PartialDual(rank=3, max_rank=2)
    with pytest.raises(ValueError, match="`gap_tolerance`"):
        PartialDual(gap_tolerance=-1e-3)
    with pytest.raises(TypeError, match="`verbose` must be True or False. Received: verbose='no'"):
        PartialDual(verbose="no")
    with pytest.raises(ValueError, match=r"`rank` must be <= min\(d, T\) = 20"):
        PartialDual(rank=21, verbose=False).fit(good)
    with pytest.raises(RuntimeError, match="not fitted"):
        PartialDual().predict([0], [0])
    with pytest.raises(ValueError, match="`cols` must lie in"):
        PartialDual(verbose=False).fit(good).predict([0], [20])


def test_importing_the_package_does_not_load_tensorflow():
    code = ("import sys, tfrec_fashion.models.partial_dual as pd; "
            "pd.PartialDual(verbose=False); print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
