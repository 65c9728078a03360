"""Solver convergence: a Partial Dual fit's certificate, gradient and rank per iteration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfrec_fashion.visualisation.figures import save_figure

import matplotlib.pyplot as plt  # noqa: E402  (after figures.py chose the Agg backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_solver_convergence(history: dict[str, list[float]], path: str | Path,
                            title: str = "", gap_tolerance: float | None = None) -> Path:
    """Plots the relative duality gap and gradient norm (left, log scale) and the rank (right)
    against the solver iteration, and saves a PNG.

    Args:
        history: column -> per-iteration values with "relative_gap", "grad_norm" and "rank"
            (``logs/solver.csv`` of a Partial Dual run, as ``TrainResult.history`` holds it).
        path: the PNG file to write.
        title: figure title.
        gap_tolerance: drawn as the stopping line of the gap, when given.
    """
    missing = [c for c in ("relative_gap", "grad_norm", "rank") if c not in history]
    if missing:
        raise ValueError(f"the solver history lacks {missing}; it has {sorted(history)}")
    # Solver iterations; a rank phase's starting point repeats the number before it.
    steps = np.asarray(history.get("iteration", np.arange(len(history["rank"]))), float)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, label in (("relative_gap", "gap / objective (certificate)"),
                        ("grad_norm", "|Riemannian gradient|")):
        values = np.abs(np.asarray(history[name], float))
        left.semilogy(steps, np.maximum(values, 1e-300), marker="o", markersize=2, label=label)
    if gap_tolerance:
        left.axhline(gap_tolerance, linestyle="--", color="grey")
        left.annotate(f"stop at {gap_tolerance:g}", xy=(0, gap_tolerance), xytext=(2, 3),
                      textcoords="offset points", color="grey")
    left.set_title("optimality certificate")
    right.step(steps, history["rank"], where="post", color="tab:green")
    right.set_title("rank (grows while the gap says it is too small)")
    right.set_ylabel("rank")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (left, right):
        axis.set_xlabel("solver iteration")
        axis.grid(alpha=0.3)
    left.legend(loc="best", fontsize=8)
    return save_figure(figure, path, title, dpi=110)
