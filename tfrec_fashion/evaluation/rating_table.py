"""The rating table: held-out RMSE of the customer-embedding models beside the rating baselines.

One row per method (baselines first: global mean, user + item biases, matrix factorisation;
then the trained models, e.g. Partial Dual and StyNet), columns test RMSE and MAE, for +-1 votes
the pooled and per-customer vote AUC (for pair votes also AUPRC, Recall@50% and Precision@10,
pooled and per customer), and the time to fit. On a planted world the oracle's AUC
is the last row. The best RMSE (and AUC) among the methods is bold. A solver's row (Partial
Dual) says after its name the rank it found, its solver iterations and its rank increases,
from its metrics (the estimator's count: rank increases are not iterations). ``write`` saves
``table.md`` and ``table.json`` like the ranking table.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

# Column key -> header; "lower" columns are better when smaller.
# The pair protocol's AUPRC, Recall@50% and Precision@10 (pooled, then per customer) show only
# where runs report them.
COLUMNS: dict[str, str] = {"test_rmse": "RMSE", "test_mae": "MAE", "test_auc": "vote AUC",
                           "test_customer_auc": "customer AUC", "test_auprc": "AUPRC",
                           "test_customer_auprc": "customer AUPRC", "test_recall_at_50": "R@50%",
                           "test_customer_recall_at_50": "customer R@50%",
                           "test_precision_at_10": "P@10",
                           "test_customer_precision_at_10": "customer P@10",
                           "seconds": "fit seconds"}
_LOWER_IS_BETTER = ("test_rmse", "test_mae")
_HIGHER_IS_BETTER = tuple(c for c in COLUMNS if c not in (*_LOWER_IS_BETTER, "seconds"))
BASELINE_NAMES: dict[str, str] = {"global_mean": "Global mean", "biases": "User + item biases",
                                  "mf": "Matrix factorisation (ALS)"}


@dataclasses.dataclass
class RatingTable:
    """Held-out rating numbers per method on one dataset.

    Args:
        dataset: the dataset's label, printed in the title.
    """

    dataset: str
    rows: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict, init=False)
    oracle: dict[str, float] | None = dataclasses.field(default=None, init=False)
    #: method -> a note printed after its name, e.g. "rank found: 22, 71 solver iterations".
    notes: dict[str, str] = dataclasses.field(default_factory=dict, init=False)

    def add(self, method: str, numbers: dict[str, float]) -> None:
        """Records a method's numbers (keys of ``COLUMNS``; missing ones print as "-")."""
        if method in self.rows:
            raise ValueError(f"{method!r} is already in the table. Received: method={method!r}")
        self.rows[method] = {k: float(v) for k, v in numbers.items() if k in COLUMNS}

    @classmethod
    def from_runs(cls, dataset: str, runs: dict[str, dict[str, Any]]) -> RatingTable:
        """The table of finished runs (method -> metrics.json content, plus "train_seconds"):
        the baselines from the first run (every run computes the same ones), then each run."""
        table = cls(dataset)
        first = next(iter(runs.values()))
        for key, name in BASELINE_NAMES.items():
            if f"{key}_test_rmse" in first:
                table.add(name, {**prefixed(first, f"{key}_"),
                                 "seconds": first.get(f"{key}_seconds", math.nan)})
        for method, metrics in runs.items():
            table.add(method, {**prefixed(metrics, ""),
                               "seconds": metrics.get("fit_seconds", math.nan)})
            if "solver_iterations" in metrics:
                table.notes[method] = _solver_note(metrics)
        if "oracle_test_auc" in first:
            table.oracle = prefixed(first, "oracle_")
        return table

    def columns(self) -> list[str]:
        present = {k for row in self.rows.values() for k in row}
        return [k for k in COLUMNS if k in present]

    def best(self, column: str) -> str | None:
        values = {m: r[column] for m, r in self.rows.items()
                  if not math.isnan(r.get(column, math.nan))}
        if not values or column not in (*_LOWER_IS_BETTER, *_HIGHER_IS_BETTER):
            return None
        pick = min if column in _LOWER_IS_BETTER else max
        return pick(values, key=values.get)

    def format_markdown(self) -> str:
        columns = self.columns()
        lines = [f"Held-out ratings on {self.dataset}", "",
                 "| method | " + " | ".join(COLUMNS[c] for c in columns) + " |",
                 "|---|" + "---|" * len(columns)]
        for method, row in self.rows.items():
            cells = []
            for column in columns:
                text = _format(row.get(column, math.nan), column)
                cells.append(f"**{text}**" if self.best(column) == method else text)
            label = f"{method} ({self.notes[method]})" if method in self.notes else method
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if self.oracle is not None:
            cells = [_format(self.oracle.get(c, math.nan), c) for c in columns]
            lines.append("| Oracle (planted truth) | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content, NaN as None."""
        def clean(row: dict[str, float] | None) -> dict[str, float | None] | None:
            return None if row is None else {k: None if math.isnan(v) else v
                                             for k, v in row.items()}

        return {"dataset": self.dataset,
                "rows": {method: clean(row) for method, row in self.rows.items()},
                "oracle": clean(self.oracle), "best": {c: self.best(c) for c in self.columns()},
                "notes": dict(self.notes)}

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        markdown, data = directory / "table.md", directory / "table.json"
        markdown.write_text(self.format_markdown() + "\n")
        data.write_text(json.dumps(self.to_dict(), indent=2))
        return markdown, data


def _solver_note(metrics: dict[str, Any]) -> str:
    """"rank found: R, N solver iterations, K rank increases" from a solver run's metrics."""
    parts = [f"rank found: {metrics['solver_rank']}"] if "solver_rank" in metrics else []
    parts.append(f"{metrics['solver_iterations']} solver iterations")
    if "solver_rank_increases" in metrics:
        parts.append(f"{metrics['solver_rank_increases']} rank increases")
    return ", ".join(parts)


def prefixed(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """The table's columns of one row of metrics.json: ``{column: metrics[prefix + column]}``
    for the columns present (prefix "" for the model, "oracle_", "biases_", ...)."""
    return {k: metrics[f"{prefix}{k}"] for k in COLUMNS if f"{prefix}{k}" in metrics}


def _format(value: float, column: str) -> str:
    if math.isnan(value):
        return "-"
    if column == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}"
