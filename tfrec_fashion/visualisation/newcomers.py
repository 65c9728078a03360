"""How fast a newcomer becomes known, as a picture: each method's AUC against the number of votes
a held-out customer gave (``training.newcomers.newcomer_curve``), its mean customer as a dashed
line of the same colour, and the planted oracle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tfrec_fashion.visualisation.figures import save_figure

import matplotlib.pyplot as plt  # noqa: E402  (after figures.py chose the Agg backend)

_PANELS = {"auc": ("held-out vote AUC", "did it learn what they love or leave?"),
           "recommendation_auc": ("recommendation AUC",
                                  "does the ranked catalogue put their true likes first?")}
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def plot_newcomer_curves(curves: Sequence[Mapping[str, list]], path: str | Path,
                         title: str = "How fast does a newcomer become known?") -> Path:
    """Writes a PNG of ``newcomer_curve`` results: one panel per metric they all have (vote
    AUC, and recommendation AUC on planted worlds), votes on x, one solid line per method, its
    mean customer dashed in the same colour, the oracle dotted (named at the top right when it
    lies far above the curves, so their differences stay readable), the legend at the upper
    left, above where the curves start.

    Args:
        curves: ``newcomer_curve`` results (the same vote counts), e.g. Partial Dual's and
            StyNet's.
        path: the PNG file to write.
        title: the figure's title.
    """
    if not curves:
        raise ValueError("plot_newcomer_curves needs at least one curve")
    metrics = [metric for metric in _PANELS if all(metric in curve for curve in curves)]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2),
                                squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        values = []
        for curve, colour in zip(curves, _COLOURS):
            votes, auc = curve["votes"], curve[metric]
            axis.plot(votes, auc, marker="o", color=colour, linewidth=2, label=curve["method"])
            baseline = curve[f"mean_customer_{metric}"][0]
            axis.axhline(baseline, color=colour, linestyle="--", linewidth=1.2,
                         label=f"{_short(curve['method'])}: mean customer")
            values += [*auc, baseline]
        low, high = min(values), max(values)
        # Headroom above the curves (which rise to the right) for the legend at the upper left.
        top = high + 0.5 * (high - low) + 0.01
        oracle = [curve[f"oracle_{metric}"][0] for curve in curves
                  if f"oracle_{metric}" in curve]
        if oracle:
            if oracle[0] <= top:
                axis.axhline(oracle[0], color="black", linestyle=":", label="oracle")
            else:
                axis.annotate(f"oracle (planted truth) {oracle[0]:.3f}, far above", xy=(1, 1),
                              xycoords="axes fraction", xytext=(-4, -12),
                              textcoords="offset points", ha="right", fontsize=8,
                              color="black")
        axis.set_ylim(low - 0.1 * (high - low) - 0.01, top)
        axis.set_xticks(curves[0]["votes"])
        axis.set_xlabel("votes the newcomer gave (0 = StyNet's survey only)"
                        if any("StyNet" in curve["method"] for curve in curves)
                        else "votes the newcomer gave")
        name, question = _PANELS[metric]
        axis.set_ylabel(name)
        axis.set_title(question, fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize=7)
    return save_figure(figure, path, title, dpi=110)


def _short(method: str) -> str:
    return method.split(" (")[0]
