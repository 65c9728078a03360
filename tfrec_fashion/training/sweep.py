"""A validation sweep: one run per point of a grid of overrides, the best chosen on validation.

``tfrec-fashion train CONFIG --sweep train.learning_rate=0.005,0.02 --sweep model.l2_latent=0.01,0.05``
trains every point of the cartesian product through the harness, each in its own run directory
``<run_dir>/sweep/<key=value,...>/``, so finished points are reused and an interrupted one
resumes, exactly as ``train`` does for one run. The chosen point is the one whose run recorded
the best ``best_<train.monitor>`` (the best epoch's validation value, or a solver's one model's;
``train.monitor_mode`` says max or min). Test metrics are reported beside it, never used to
choose. ``sweep.json`` and ``sweep.md`` beside the points record every point and the choice.
``tfrec-fashion table CONFIG --methods M --sweep ...`` sweeps one method of a table the same way
(``tables.sweep_method``).

Values are parsed as YAML and every point is built and checked like ``--set`` (``load_config``)
before anything trains, so a bad key or value fails in one line with nothing written.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from tfrec_fashion.config import parse_yaml, to_dict
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.run_config import RunConfig

# Keys whose change never changes a run's result, so a finished point is reused across them.
_REUSABLE_CHANGES = {"train.verbose"}


@dataclasses.dataclass
class SweepPoint:
    """One point of the grid.

    Args:
        overrides: its ``KEY=VALUE`` strings, applied after the file and ``--set``.
        config: the run config they give, its ``run_dir`` the point's own folder.
    """

    overrides: list[str]
    config: RunConfig

    @property
    def name(self) -> str:
        return ",".join(self.overrides)


def parse_sweep(specs: Sequence[str]) -> list[list[str]]:
    """The grid of ``--sweep KEY=V1,V2,...`` specs: every combination, as override lists.

    ``["a=1,2", "b=[x, y],z"]`` -> ``[["a=1", "b=[x, y]"], ["a=1", "b=z"], ["a=2", ...], ...]``;
    the values are one YAML flow sequence, so a list value keeps its commas inside brackets.
    """
    axes: list[list[str]] = []
    keys: list[str] = []
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ConfigError(f"--sweep {spec!r}: expected KEY=V1,V2,..., "
                              "e.g. train.learning_rate=0.005,0.01")
        if key in keys:
            raise ConfigError(f"--sweep {spec!r}: '{key}' is swept twice; give its values once")
        if key == "run_dir":
            raise ConfigError(f"--sweep {spec!r}: every point has its own run_dir; "
                              "use --run-dir for the sweep's folder")
        try:
            values = parse_yaml(f"[{text}]")
        except yaml.YAMLError:
            raise ConfigError(f"--sweep {spec!r}: the values are not valid YAML") from None
        keys.append(key)
        axes.append([f"{key}={_yaml_text(value)}" for value in values])
    return [list(point) for point in itertools.product(*axes)]


def sweep_points(specs: Sequence[str], build: Callable[[list[str]], RunConfig],
                 sweep_dir: str | Path) -> list[SweepPoint]:
    """Builds and checks every point of the grid before anything runs.

    Args:
        specs: the ``--sweep`` specs.
        build: overrides -> the run config (``load_config`` with the file and ``--set``);
            raises ``ConfigError`` naming the key for a bad key or value.
        sweep_dir: the points' run directories go in ``<sweep_dir>/<point>/``.
    """
    points: list[SweepPoint] = []
    seen: dict[str, SweepPoint] = {}
    for overrides in parse_sweep(specs):
        config = build(overrides)
        folder = Path(sweep_dir) / re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(overrides))
        point = SweepPoint(overrides, dataclasses.replace(config, run_dir=str(folder)))
        same = json.dumps(to_dict(config), sort_keys=True, default=str)
        if same in seen:
            raise ConfigError(f"--sweep points {seen[same].name} and {point.name} give the same "
                              "run (the swept key does not reach this run, or a value repeats)")
        seen[same] = point
        points.append(point)
    monitors = {(p.config.train.monitor, p.config.train.monitor_mode) for p in points}
    if len(monitors) > 1:
        raise ConfigError(f"--sweep points monitor different quantities {sorted(monitors)}; "
                          "the choice needs one validation metric")
    return points


@dataclasses.dataclass
class SweepResult:
    """Every point's validation value and test metrics, and the point chosen on validation.

    Args:
        monitor: the validation quantity, read from ``best_<monitor>`` in each ``metrics.json``.
        mode: "max" or "min".
        rows: per point: ``overrides``, ``run_dir``, ``validation``, ``test`` (the model's
            ``test_*`` and ``cold_test_*`` metrics), ``best_epoch``, ``reused``.
        chosen: index of the chosen row.
    """

    monitor: str
    mode: str
    rows: list[dict[str, Any]]
    chosen: int

    @property
    def best(self) -> dict[str, Any]:
        return self.rows[self.chosen]

    def format_markdown(self) -> str:
        keys = [o.partition("=")[0] for o in self.rows[0]["overrides"]]
        tests = list(self.rows[0]["test"])
        header = [*keys, f"validation {self.monitor}", *tests, "best epoch", "run"]
        lines = ["| " + " | ".join(header) + " |",
                 "| " + " | ".join(["---"] * len(keys) + ["---:"] * (len(header) - len(keys)
                                                                   - 1) + ["---"]) + " |"]
        for i, row in enumerate(self.rows):
            values = [o.partition("=")[2] for o in row["overrides"]]
            validation = _format(row["validation"])
            if i == self.chosen:
                validation = f"**{validation}**"
            cells = [*values, validation, *(_format(row["test"].get(t)) for t in tests),
                     _format(row["best_epoch"]), "reused" if row["reused"] else "trained"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"Chosen on validation ({self.monitor}, {self.mode}): "
                     f"{' '.join(self.best['overrides'])}; test metrics are reported, not used "
                     "to choose.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "chosen": self.best,
                "points": self.rows}

    def write(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "sweep.json").write_text(json.dumps(self.to_json(), indent=2, default=float))
        (directory / "sweep.md").write_text(self.format_markdown() + "\n")


def run_sweep(points: Sequence[SweepPoint], sweep_dir: str | Path,
              overwrite: bool = False) -> SweepResult:
    """Trains (or reuses) every point, chooses the best on validation, writes ``sweep.json``
    and ``sweep.md`` into ``sweep_dir`` and returns the ``SweepResult``.

    A finished point is reused when its saved config is the point's (``overwrite`` retrains
    it); a finished point trained with another config (the file or ``--set`` changed since)
    is refused before anything trains, as is an interrupted one that cannot resume.
    """
    from tfrec_fashion.training.harness import (check_resumable, config_differences,
                                                run_state, train)

    reuse = []
    for point in points:
        state = run_state(point.config.run_dir)
        if state == "interrupted":
            check_resumable(Path(point.config.run_dir), point.config)
        changed = config_differences(point.config.run_dir, point.config, _REUSABLE_CHANGES)
        if state == "finished" and changed and not overwrite:
            raise ConfigError(f"sweep point {point.config.run_dir} holds a finished run with "
                              f"another config ({', '.join(changed)} differ); pass --overwrite "
                              "to retrain the points, or sweep into another folder")
        reuse.append(state == "finished" and not overwrite)

    rows, recorded = [], set()
    for i, (point, reused) in enumerate(zip(points, reuse), start=1):
        run_dir = Path(point.config.run_dir)
        if reused:
            print(f"=== sweep point {i}/{len(points)} {point.name}: reusing {run_dir}")
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            print(f"\n=== sweep point {i}/{len(points)} {point.name}: training", flush=True)
            metrics = train(point.config, overwrite=overwrite).metrics
        rows.append(_row(point, metrics, reused))
        recorded |= {k for k in metrics if k.startswith(("val_", "best_val_"))}
    monitor, mode = points[0].config.train.monitor, points[0].config.train.monitor_mode
    chosen = _choose(rows, mode)
    if chosen is None:
        raise ConfigError(f"no sweep point recorded a validation {monitor}; set train.monitor "
                          "to a quantity the runs record (they record: "
                          f"{', '.join(sorted(recorded)) or 'none'})")
    result = SweepResult(monitor, mode, rows, chosen)
    result.write(sweep_dir)
    return result


def _row(point: SweepPoint, metrics: dict[str, Any], reused: bool) -> dict[str, Any]:
    monitor = point.config.train.monitor
    value = metrics.get(f"best_{monitor}")
    return {"overrides": point.overrides, "run_dir": point.config.run_dir,
            "validation": None if value is None or math.isnan(value) else float(value),
            "test": {k: v for k, v in metrics.items()
                     if k.startswith(("test_", "cold_test_"))},
            "best_epoch": metrics.get("best_epoch"), "reused": reused}


def _choose(rows: list[dict[str, Any]], mode: str) -> int | None:
    """The row with the best validation value (the first of equals; None when no row has
    one). Test metrics are never read here."""
    scored = [(row["validation"], i) for i, row in enumerate(rows) if row["validation"] is not None]
    if not scored:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(scored, key=lambda vi: (sign * vi[0], -vi[1]))[1]


def _yaml_text(value: Any) -> str:
    """``value`` as a one-line YAML scalar or flow collection, read back by ``--set``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return text[:-len("\n...")] if text.endswith("\n...") else text


def _format(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
