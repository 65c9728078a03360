"""Fashion trends per interpretable feature (I-VBPR Figure 2): how each attribute value's appeal
moved over the time epochs, for the features that moved most."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfrec_fashion.visualisation.figures import save_figure

import matplotlib.pyplot as plt  # noqa: E402  (after figures.py chose the Agg backend)


def plot_feature_trends(values, feature_names: Sequence[str], path: str | Path,
                        top: int = 6, title: str = "", ylabel: str = "appeal") -> Path:
    """Plots the ``top`` features whose value changed most from the first to the last epoch.

    Args:
        values: float [T, F], e.g. ``InteractiveRecommender.feature_popularity()["values"]``
            (the visual bias beta'(t)) or ``feature_influence()["values"]`` (eq. 8).
        feature_names: the F names ("colour=navy", ...), used as line labels.
        path: the PNG to write.
        top: how many features to draw (rising ones solid, falling ones dashed).
        title, ylabel: figure title and y-axis label.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(feature_names):
        raise ValueError(f"`values` must be [T, F] with F = len(feature_names) = "
                         f"{len(feature_names)}. Received: shape={values.shape}")
    if values.shape[0] < 2:
        raise ValueError("a trend needs at least 2 time epochs. Received: "
                         f"{values.shape[0]} epoch(s) (train a temporal model, n_time_epochs > 1)")
    if not np.isfinite(values).all():
        raise ValueError("`values` must be finite")
    change = values[-1] - values[0]
    chosen = np.argsort(-np.abs(change), kind="stable")[:max(1, int(top))]
    epochs = np.arange(1, values.shape[0] + 1)
    figure, axis = plt.subplots(figsize=(9, 4))
    for k in chosen:
        axis.plot(epochs, values[:, k], marker="o", linestyle="-" if change[k] > 0 else "--",
                  label=f"{feature_names[k]} ({change[k]:+.2f})")
    axis.set_xlabel("time epoch")
    axis.set_xticks(epochs)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
                title="change first -> last", title_fontsize=8)
    return save_figure(figure, path, title)
