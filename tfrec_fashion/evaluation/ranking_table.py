"""DVBPR's Table III: per-user AUC of every method, on all items and on cold items, per dataset.

The paper's table has one row per (dataset, setting), settings "All Items" and "Cold Items"
(items with fewer than 5 training interactions, ``metrics.cold_items``), one column per method
(a) RAND ... (h) DVBPR, the best method of each row in bold, and two improvement columns: "h vs.
d" (DVBPR over BPR-MF) and "h vs. best" (DVBPR over the best other method). :class:`RankingTable`
keeps the same layout with the method names as headers instead of letters: columns follow the
order in which methods were added, ``proposed`` and ``reference`` name h and d, and an optional
"Oracle" column (the planted truth of a synthetic world) is printed last, after the
improvements, and is never bold nor compared against, since no method could reach it.

:meth:`RankingTable.write` saves ``table.md`` (for people) and ``table.json`` (for programs, with
the bold cell and the improvements already worked out, NaN written as ``null``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

# Table III's settings: the key stored per method and the label printed in the row.
SETTINGS: dict[str, str] = {"all": "All Items", "cold": "Cold Items"}
# Rows each run reports beside its model (``evaluation.implicit``): metric prefix -> the paper's
# column name.
BASELINE_ROWS = {"random": "RAND", "popularity": "PopRank", "visrank": "VisRank"}
ORACLE_ROW = "Oracle"


@dataclasses.dataclass
class RankingTable:
    """AUCs per dataset, method and setting, printed as DVBPR Table III.

    Args:
        proposed: the method whose improvements are reported (the paper's h, "DVBPR").
        reference: the content-unaware method it is compared with (the paper's d, "BPR-MF").
        oracle: name of the reference row of planted truth; shown last, never bold or compared.

    Attributes (filled by :meth:`add`):
        results: ``{dataset: {method: {"all": auc, "cold": auc}}}``; NaN = not run / undefined.
        methods: every method in the order first added (the column order).

    Example:
        >>> table = RankingTable()
        >>> table.add("Amazon Fashion", "BPR-MF", all_auc=0.6278, cold_auc=0.5514)
        >>> table.add("Amazon Fashion", "DVBPR", all_auc=0.7964, cold_auc=0.7718)
        >>> table.improvement("Amazon Fashion", "all", over="BPR-MF")  # 26.86, "26.9%" in print
    """

    proposed: str = "DVBPR"
    reference: str = "BPR-MF"
    oracle: str = "Oracle"
    results: dict[str, dict[str, dict[str, float]]] = dataclasses.field(
        default_factory=dict, init=False
    )
    methods: list[str] = dataclasses.field(default_factory=list, init=False)

    def add(
        self, dataset: str, method: str, *, all_auc: float, cold_auc: float = math.nan
    ) -> None:
        """Records one method's AUC on a dataset (cold items optional: NaN if not measured).

        Raises:
            ValueError: empty names, an AUC outside [0, 1], or the same (dataset, method) twice.
        """
        for name, value in (("dataset", dataset), ("method", method)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"`{name}` must be a non-empty string. Received: {name}={value!r}")
        aucs = {"all": _check_auc(all_auc, "all_auc"), "cold": _check_auc(cold_auc, "cold_auc")}
        if method in self.results.get(dataset, {}):
            raise ValueError(
                f"{method!r} already has results on {dataset!r}; build a new table to replace "
                f"them. Received: method={method!r}, dataset={dataset!r}"
            )
        self.results.setdefault(dataset, {})[method] = aucs
        if method not in self.methods:
            self.methods.append(method)

    @classmethod
    def from_runs(cls, dataset: str, runs: dict[str, dict[str, Any]], *,
                  proposed: str = "DVBPR", reference: str = "BPR-MF") -> RankingTable:
        """The table of finished runs of the implicit protocol (method -> metrics.json
        content): the baselines from the first run (every run computes the same ones), then
        each run's ``test_auc`` / ``cold_test_auc``, then the oracle where the data has one."""
        table = cls(proposed=proposed, reference=reference, oracle=ORACLE_ROW)
        first = next(iter(runs.values()))
        for prefix, column in BASELINE_ROWS.items():
            if f"{prefix}_test_auc" in first:
                table.add(dataset, column, all_auc=first[f"{prefix}_test_auc"],
                          cold_auc=first[f"{prefix}_cold_test_auc"])
        for method, metrics in runs.items():
            table.add(dataset, method, all_auc=metrics["test_auc"],
                      cold_auc=metrics["cold_test_auc"])
        if "oracle_test_auc" in first:
            table.add(dataset, ORACLE_ROW, all_auc=first["oracle_test_auc"],
                      cold_auc=first["oracle_cold_test_auc"])
        return table

    # ------------------------------------------------------------------ derived values
    def auc(self, dataset: str, method: str, setting: str) -> float:
        """The AUC of ``method`` on ``dataset`` in ``setting`` ("all" / "cold"); NaN if absent."""
        _check_setting(setting)
        if dataset not in self.results:
            raise ValueError(
                f"Unknown dataset; known: {list(self.results)}. Received: dataset={dataset!r}"
            )
        return self.results[dataset].get(method, {}).get(setting, math.nan)

    def best(self, dataset: str, setting: str, exclude: tuple[str, ...] = ()) -> list[str]:
        """The method(s) with the highest defined AUC of the row, Oracle and ``exclude`` aside.

        Several methods are returned only when they tie exactly; empty if nothing is defined.
        """
        scores = {
            method: self.auc(dataset, method, setting)
            for method in self.methods
            if method != self.oracle and method not in exclude
        }
        defined = {method: value for method, value in scores.items() if not math.isnan(value)}
        if not defined:
            return []
        top = max(defined.values())
        return [method for method, value in defined.items() if value == top]

    def improvement(self, dataset: str, setting: str, over: str | None = None) -> float:
        """Relative improvement in % of ``proposed`` over ``over``: (h - d) / d * 100.

        Args:
            over: a method name; ``None`` = the best other non-oracle method ("h vs. best").

        Returns:
            NaN when either AUC is missing / undefined (or ``over`` is the proposed method).
        """
        if over is None:
            others = self.best(dataset, setting, exclude=(self.proposed,))
            if not others:
                return math.nan
            over = others[0]
        if over == self.proposed:
            return math.nan
        mine = self.auc(dataset, self.proposed, setting)
        theirs = self.auc(dataset, over, setting)
        if math.isnan(mine) or math.isnan(theirs) or theirs == 0.0:
            return math.nan
        return (mine - theirs) / theirs * 100.0

    # ------------------------------------------------------------------ Markdown
    def format_markdown(self) -> str:
        """Table III as a Markdown table: AUCs to 4 decimals, the best of each row in bold.

        Improvement columns ("<proposed> vs. <reference>", "<proposed> vs. best") appear only when
        the methods they need are in the table; missing values print as "n/a".
        """
        columns = self._method_columns()
        show_reference = self.proposed in self.methods and self.reference in self.methods
        show_best = self.proposed in self.methods and len(columns) > 1
        header = ["Dataset", "Setting", *columns]
        if show_reference:
            header.append(f"{self.proposed} vs. {self.reference}")
        if show_best:
            header.append(f"{self.proposed} vs. best")
        if self.oracle in self.methods:
            header.append(self.oracle)
        alignment = ["---", "---"] + ["---:"] * (len(header) - 2)
        lines = [_markdown_row(header), _markdown_row(alignment)]
        for dataset in self.results:
            for index, (setting, label) in enumerate(SETTINGS.items()):
                best = set(self.best(dataset, setting))
                cells = [dataset if index == 0 else "", label]
                for method in columns:
                    text = _format_auc(self.auc(dataset, method, setting))
                    cells.append(f"**{text}**" if method in best else text)
                if show_reference:
                    gain = self.improvement(dataset, setting, self.reference)
                    cells.append(_format_percent(gain))
                if show_best:
                    cells.append(_format_percent(self.improvement(dataset, setting)))
                if self.oracle in self.methods:
                    cells.append(_format_auc(self.auc(dataset, self.oracle, setting)))
                lines.append(_markdown_row(cells))
        caption = (
            "AUC, higher is better; the best method of each row is in bold. Cold items: few "
            "training interactions (paper: fewer than 5). Improvements are relative: "
            f"({self.proposed} - X) / X, X = {self.reference} or the best other method."
        )
        if self.oracle in self.methods:
            caption += f" {self.oracle}: the planted truth, shown for reference, never compared."
        return "\n".join(lines) + "\n\n" + caption + "\n"

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the inputs (NaN as ``None``) plus the bold cell and improvements.

        ``from_dict`` reads back the inputs; ``derived`` is for programs reading the table.
        """
        derived = {
            dataset: {
                setting: {
                    "best": self.best(dataset, setting),
                    "improvement_over_reference_percent": _nan_to_none(
                        self.improvement(dataset, setting, self.reference)
                    ),
                    "improvement_over_best_other_percent": _nan_to_none(
                        self.improvement(dataset, setting)
                    ),
                }
                for setting in SETTINGS
            }
            for dataset in self.results
        }
        return {
            "proposed": self.proposed,
            "reference": self.reference,
            "oracle": self.oracle,
            "methods": list(self.methods),
            "results": {
                dataset: {
                    method: {setting: _nan_to_none(value) for setting, value in aucs.items()}
                    for method, aucs in row.items()
                }
                for dataset, row in self.results.items()
            },
            "derived": derived,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankingTable:
        """The table saved by :meth:`to_dict` (``derived`` is recomputed, not read)."""
        table = cls(proposed=data["proposed"], reference=data["reference"], oracle=data["oracle"])
        table.methods = list(data["methods"])  # the column order; add() appends any other
        for dataset, row in data["results"].items():
            for method, aucs in row.items():
                table.add(dataset, method, all_auc=_none_to_nan(aucs["all"]),
                          cold_auc=_none_to_nan(aucs.get("cold")))
        return table

    def to_json(self) -> str:
        """:meth:`to_dict` as strict JSON text (no NaN literals)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RankingTable:
        """The table saved by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """Writes ``table.md`` and ``table.json`` into ``directory`` (created if needed).

        Returns:
            (markdown_path, json_path).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        markdown_path, json_path = directory / "table.md", directory / "table.json"
        markdown_path.write_text(self.format_markdown(), encoding="utf-8")
        json_path.write_text(self.to_json(), encoding="utf-8")
        return markdown_path, json_path

    def _method_columns(self) -> list[str]:
        return [method for method in self.methods if method != self.oracle]


def _check_auc(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1] or NaN; Python and NumPy real scalars, never bools."""
    real = (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, real):
        # ValueError, not TypeError: one error type for every bad argument (as metrics._checks).
        message = f"`{name}` must be a real number. Received: {name}={value!r}"
        raise ValueError(message)  # noqa: TRY004
    value = float(value)
    if not (math.isnan(value) or 0.0 <= value <= 1.0):
        raise ValueError(f"`{name}` must be in [0, 1] or NaN. Received: {name}={value}")
    return value


def _check_setting(setting: str) -> None:
    if setting not in SETTINGS:
        raise ValueError(
            f"`setting` must be one of {list(SETTINGS)}. Received: setting={setting!r}"
        )


def _format_auc(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _format_percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}%"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else value
