"""Training curves: the per-epoch log of a run as a PNG a person can read at a glance."""

from __future__ import annotations

import math
from pathlib import Path

from tfrec_fashion.visualisation.figures import save_figure

import matplotlib.pyplot as plt  # noqa: E402  (after figures.py chose the Agg backend)


def plot_training_curves(history: dict[str, list[float]], path: str | Path, title: str = "",
                         reference: dict[str, float] | None = None) -> Path:
    """Plots losses (left) and validation metrics (right) per epoch and saves a PNG.

    Args:
        history: column -> per-epoch values, as ``harness.read_log`` returns (an "epoch"
            column is used as the x axis when present).
        path: the PNG file to write.
        title: figure title, e.g. the run's name.
        reference: horizontal lines to draw on the metrics panel, e.g. {"oracle": 0.87}.
    """
    epochs = [e + 1 for e in history.get("epoch", [])] or None
    # The task loss (and its validation twin); total/regularisation terms would only crowd it.
    losses = {k: v for k, v in history.items() if k in ("loss", "val_loss") and _finite(v)}
    metrics = {k: v for k, v in history.items()
               if k != "epoch" and not k.endswith("loss") and _finite(v)}
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, series, label in ((left, losses, "loss"), (right, metrics, "metric")):
        for name, values in series.items():
            axis.plot(epochs or range(1, len(values) + 1), values, marker="o", markersize=3,
                      label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    for name, value in (reference or {}).items():
        right.axhline(value, linestyle="--", color="grey")
        right.annotate(f"{name} {value:.3f}", xy=(1, value), xytext=(2, 3),
                       textcoords="offset points", color="grey")
    for axis in (left, right):
        if axis.lines:
            axis.legend(loc="best", fontsize=8)
    left.set_title("training loss")
    right.set_title("validation metrics")
    return save_figure(figure, path, title, dpi=110)


def _finite(values: list[float]) -> bool:
    return any(not math.isnan(v) for v in values)
