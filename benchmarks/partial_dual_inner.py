"""Benchmark: Partial Dual's batched inner solve (one sparse product for every M_j, one batched
inverse) against the per-column loop a reader of the formulation would write first, on a random
MovieLens-100K-sized problem; plus the time of one cost + egrad + ehess and of one certificate.

    .venv/bin/python benchmarks/partial_dual_inner.py [--rows 943] [--cols 1682]
        [--observed 80000] [--rank 10] [--C 1.0]

Prints both inner-solve times, their ratio, and checks the two agree.
"""

import argparse
import time

import numpy as np

from tfrec_fashion.models.partial_dual import PartialDualProblem


def per_column_loop(problem: PartialDualProblem, U: np.ndarray) -> np.ndarray:
    """Z* on Omega, one dense solve of (U_j U_j^T + I/C) z_j = y_j per column (the reference)."""
    z = np.empty(problem.n_observed)
    for j in range(problem.shape[1]):
        entries = np.flatnonzero(problem.cols == j)
        U_j = U[problem.rows[entries]]
        system = U_j @ U_j.T + np.eye(entries.size) / problem.C
        z[entries] = np.linalg.solve(system, problem.values[entries])
    return z


def timed(function, *args, repeats: int = 3) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=943)
    parser.add_argument("--cols", type=int, default=1682)
    parser.add_argument("--observed", type=int, default=80_000)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    positions = rng.choice(args.rows * args.cols, size=args.observed, replace=False)
    rows, cols = np.divmod(positions, args.cols)
    values = rng.integers(1, 6, size=args.observed) - 3.5
    problem = PartialDualProblem(rows, cols, values, (args.rows, args.cols), args.C)
    U = rng.standard_normal((args.rows, args.rank))
    U /= np.linalg.norm(U)
    Udot = rng.standard_normal(U.shape)

    def batched(U):
        problem._states = []  # time the solve, not the cache
        return problem.solve_inner(U)

    batched_seconds, z = timed(batched, U)
    loop_seconds, z_loop = timed(per_column_loop, problem, U, repeats=1)
    error = np.max(np.abs(z - z_loop)) / np.max(np.abs(z_loop))

    def value_gradient_hessian(U):
        problem._states = []
        return problem.cost(U), problem.egrad(U), problem.ehess(U, Udot)

    evaluation_seconds, _ = timed(value_gradient_hessian, U)
    hessian_seconds, _ = timed(problem.ehess, U, Udot)
    certificate_seconds, _ = timed(problem.gap, U)
    print(f"{args.rows} x {args.cols}, {args.observed} observed, r = {args.rank}, C = {args.C}")
    print(f"inner solve, batched:          {batched_seconds * 1e3:9.1f} ms")
    print(f"inner solve, per-column loop:  {loop_seconds * 1e3:9.1f} ms")
    print(f"speed-up:                      {loop_seconds / batched_seconds:9.1f} x "
          f"(max relative difference {error:.1e})")
    print(f"cost + egrad + ehess (cold):   {evaluation_seconds * 1e3:9.1f} ms")
    print(f"ehess alone (cached inner):    {hessian_seconds * 1e3:9.1f} ms")
    print(f"certificate (svds, tol=0):     {certificate_seconds * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
