"""The design protocol's table (``evaluation.design``): the paper's Table IV layout from finished
runs, the paper's numbers beside ours, and the eta sweep of Fig. 3 as a table and a PNG.

Per run (a GAN method of the table config), four rows: random real X_c, random generated
G(., c), retrieval delta(u, c) and synthesis delta-hat(u, c); columns preference (the DVBPR score
theta_u . Phi(x)), quality (inception score of the project classifier), diversity (1 - mean SSIM),
the planted true score (Fashion-MNIST worlds) and the Frechet distance to the catalogue, each
"mean ± std"; then the paper's preference, quality and diversity for the same row (Amazon
Fashion, Inception network: compare orderings, not values). Below: the classifier's test
accuracy, how often synthesis beats each row per query, and the eta sweep. ``write(directory)``
writes ``table.md``, ``table.json`` and ``eta_sweep.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, ClassVar

from tfrec_fashion.evaluation.design import MEASURES, SOURCES

#: The paper's Table IV (Amazon Fashion, 1,000 trials, top-3): source -> measure -> (mean, std).
PAPER_TABLE_IV: dict[str, dict[str, tuple[float, float]]] = {
    "random_real": {"preference": (-1.9547, 3.8), "quality": (6.8685, 0.36),
                    "diversity": (0.5585, 0.09)},
    "random_generated": {"preference": (-1.9392, 3.7), "quality": (6.8121, 0.37),
                         "diversity": (0.5589, 0.09)},
    "retrieval": {"preference": (7.1876, 3.2), "quality": (7.6492, 0.27),
                  "diversity": (0.5393, 0.11)},
    "synthesis": {"preference": (7.6760, 4.1), "quality": (7.6524, 0.24),
                  "diversity": (0.5265, 0.12)},
}


@dataclasses.dataclass
class DesignTable:
    """Table IV and Fig. 3 of finished design runs (module docstring).

    Args:
        dataset: the dataset's label, printed in the title.
        runs: method -> its metrics.json content (the design protocol's keys).
    """

    dataset: str
    runs: dict[str, dict[str, Any]]
    ROWS: ClassVar[dict[str, str]] = {
        "random_real": "Random real X_c", "random_generated": "Random generated G(., c)",
        "retrieval": "Retrieval delta(u, c) (eq. 8)",
        "synthesis": "Synthesis delta-hat(u, c) (eq. 9)"}
    SHORT: ClassVar[dict[str, str]] = {
        "random_real": "random real items", "random_generated": "random generated items",
        "retrieval": "retrieval"}
    COLUMNS: ClassVar[dict[str, str]] = {
        "preference": "Preference", "quality": "Quality (IS)",
        "diversity": "Diversity (1 - SSIM)", "true_score": "Planted true score"}
    #: the eta plot's panels: measure -> (title, y label).
    PANELS: ClassVar[dict[str, tuple[str, str]]] = {
        "preference": ("(a) Preference score", "theta_u . Phi(x)"),
        "quality": ("(b) Image quality", "inception score"),
        "diversity": ("(c) Image diversity", "1 - mean SSIM")}

    @classmethod
    def from_runs(cls, dataset: str, runs: dict[str, dict[str, Any]], *, proposed: str = "",
                  reference: str = "") -> DesignTable:
        """The table of runs (method -> metrics.json content)."""
        missing = {method: sorted(f"{s}_preference_mean" for s in SOURCES
                                  if f"{s}_preference_mean" not in metrics)
                   for method, metrics in runs.items()}
        missing = {method: keys for method, keys in missing.items() if keys}
        if missing:
            raise ValueError(f"the design table reads the design protocol's metrics; missing "
                             f"{missing}")
        return cls(dataset, dict(runs))

    # ------------------------------------------------------------------ values
    def cell(self, method: str, source: str, measure: str) -> tuple[float, float]:
        """(mean, std) of ``measure`` for ``source`` in ``method``'s run (NaN when absent)."""
        metrics = self.runs[method]
        return (float(metrics.get(f"{source}_{measure}_mean", math.nan)),
                float(metrics.get(f"{source}_{measure}_std", math.nan)))

    def etas(self, method: str) -> list[float]:
        """The eta values of ``method``'s sweep, ascending."""
        return sorted({float(key[4:].split("_", 1)[0]) for key in self.runs[method]
                       if key.startswith("eta_") and key.endswith("_preference_mean")
                       and not key.startswith("eta_sweep_")})

    def sweep(self, method: str) -> dict[str, dict[str, tuple[float, float]]]:
        """eta (as text) -> measure -> (mean, std) of ``method``'s synthesis, and "retrieval"
        -> the retrieval row on the same queries."""
        metrics = self.runs[method]
        rows = {f"{eta:g}": f"eta_{eta:g}_" for eta in self.etas(method)}
        rows["retrieval"] = "eta_sweep_retrieval_"
        return {name: {m: (float(metrics.get(f"{prefix}{m}_mean", math.nan)),
                           float(metrics.get(f"{prefix}{m}_std", math.nan))) for m in MEASURES}
                for name, prefix in rows.items()}

    # ------------------------------------------------------------------ markdown
    def format_markdown(self) -> str:
        lines = []
        for method, metrics in self.runs.items():
            trials, k = int(metrics.get("design_trials", 0)), int(metrics.get("design_top_k", 3))
            lines += [f"Table IV analogue on {self.dataset} ({method}): top-{k} images per "
                      f"(customer, category), {trials} queries; mean ± std", "",
                      "| Item source | " + " | ".join(self.COLUMNS.values())
                      + " | Frechet distance | paper: preference | paper: quality "
                        "| paper: diversity |",
                      "|---|" + "---:|" * (len(self.COLUMNS) + 4)]
            for source, name in self.ROWS.items():
                cells = [_pm(*self.cell(method, source, m)) for m in self.COLUMNS]
                cells.append(_number(metrics.get(f"{source}_frechet", math.nan), 2))
                paper = PAPER_TABLE_IV[source]
                cells += [_pm(*paper[m], digits=4) for m in ("preference", "quality",
                                                             "diversity")]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines += ["", *self._notes(metrics), "", *self._sweep_markdown(method), ""]
        lines.append("Paper: Amazon Fashion, Inception network, DVBPR's own preference; ours: "
                     "a planted world, the project classifier (other data: compare orderings, "
                     "not values). The eta plot: eta_sweep.png.")
        return "\n".join(lines)

    def _notes(self, metrics: dict[str, Any]) -> list[str]:
        notes = [f"- Classifier test accuracy: {_number(metrics.get('classifier_test_accuracy'), 4)}"
                 " (quality = its inception score over 10 parts of a row's images)"]
        for suffix, under in (("_true", "the planted true taste"), ("", "DVBPR's preference")):
            shares = [f"{self.SHORT[row]} in {100 * metrics[key]:.1f}%" for row in SOURCES[:3]
                      if (key := f"synthesis_beats_{row}{suffix}") in metrics]
            if shares:
                notes.append(f"- Synthesis beats, per query under {under}: " + ", ".join(shares))
        if "synthesis_seconds_per_trial" in metrics:
            notes.append(f"- Synthesis: {metrics['synthesis_seconds_per_trial']:.2f} s per query")
        return notes

    def _sweep_markdown(self, method: str) -> list[str]:
        sweep = self.sweep(method)
        if len(sweep) == 1:
            return []
        n = int(self.runs[method].get("design_eta_trials", 0))
        lines = [f"Effect of eta (Fig. 3), synthesis on the first {n} queries", "",
                 "| eta | " + " | ".join(self.COLUMNS.values()) + " |",
                 "|---|" + "---:|" * len(self.COLUMNS)]
        for name, row in sweep.items():
            label = "retrieval delta(u, c)" if name == "retrieval" else name
            lines.append(f"| {label} | " + " | ".join(_pm(*row[m]) for m in self.COLUMNS) + " |")
        return lines

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content, NaN as None."""
        def pair(values: tuple[float, float]) -> dict[str, float | None]:
            return {"mean": _none(values[0]), "std": _none(values[1])}

        return {"dataset": self.dataset, "paper": {
                    s: {m: {"mean": v[0], "std": v[1]} for m, v in row.items()}
                    for s, row in PAPER_TABLE_IV.items()},
                "runs": {method: {
                    "rows": {s: {**{m: pair(self.cell(method, s, m)) for m in MEASURES},
                                 "frechet": _none(float(metrics.get(f"{s}_frechet", math.nan)))}
                             for s in SOURCES},
                    "eta_sweep": {name: {m: pair(v) for m, v in row.items()}
                                  for name, row in self.sweep(method).items()},
                    **{key: _none(float(value)) for key, value in metrics.items()
                       if key.startswith(("synthesis_beats_", "classifier_", "design_"))
                       and isinstance(value, (int, float))}}
                    for method, metrics in self.runs.items()}}

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """``table.md``, ``table.json`` and ``eta_sweep.png`` (when a run has a sweep) in
        ``directory``; returns the first two."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        markdown, data = directory / "table.md", directory / "table.json"
        markdown.write_text(self.format_markdown() + "\n")
        data.write_text(json.dumps(self.to_dict(), indent=2))
        if any(self.etas(method) for method in self.runs):
            self.plot_eta_sweep(directory / "eta_sweep.png")
        return markdown, data

    def plot_eta_sweep(self, path: str | Path) -> Path:
        """Fig. 3: preference (with the planted true score on a second axis), quality and
        diversity of the synthesis against eta, means over the sweep's queries, the retrieval
        row on the same queries as a dashed line; a PNG."""
        import matplotlib

        matplotlib.use("Agg")  # files only: no display is needed or assumed
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        twin = None
        for index, (method, metrics) in enumerate(self.runs.items()):
            etas = self.etas(method)
            if not etas:
                continue
            sweep, colour = self.sweep(method), f"C{2 * index}"
            # The paper's x axis: the eta values equally spaced (0, 0.1, 1, 10).
            x = list(range(len(etas)))
            for axis, measure in zip(axes, self.PANELS):
                axis.plot(x, [sweep[f"{eta:g}"][measure][0] for eta in etas], marker="o",
                          color=colour, label=f"synthesis delta-hat(u, c), {method}")
                axis.axhline(sweep["retrieval"][measure][0], linestyle="--", color=colour,
                             alpha=0.7, label=f"retrieval delta(u, c), {method}")
                axis.set_xticks(x, [f"{eta:g}" for eta in etas])
            if "eta_sweep_retrieval_true_score_mean" in metrics:
                twin = twin or axes[0].twinx()
                true_colour = f"C{2 * index + 1}"
                twin.plot(x, [sweep[f"{eta:g}"]["true_score"][0] for eta in etas], marker="s",
                          color=true_colour, label=f"synthesis, planted true score, {method}")
                twin.axhline(sweep["retrieval"]["true_score"][0], linestyle=":",
                             color=true_colour, alpha=0.8,
                             label=f"retrieval, planted true score, {method}")
                twin.set_ylabel("planted true score (squares, dotted)")
        for axis, (title, label) in zip(axes, self.PANELS.values()):
            axis.set_title(title)
            axis.set_xlabel("eta (realism penalty weight)")
            axis.set_ylabel(label)
            axis.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        if twin is not None:
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4),
                      fontsize=8, frameon=False)
        figure.suptitle(f"Effect of eta on {self.dataset} (means over the sweep's queries)")
        figure.tight_layout(rect=(0, 0.1, 1, 1))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        plt.close(figure)
        return path


def _pm(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{min(digits, 2)}f}" if not math.isnan(std) \
        else f"{mean:.{digits}f}"


def _number(value: Any, digits: int) -> str:
    return "-" if value is None or math.isnan(float(value)) else f"{float(value):.{digits}f}"


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value
