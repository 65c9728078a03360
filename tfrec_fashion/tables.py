"""The papers' comparison tables, run from one config: every method trained on one dataset.

``tfrec-fashion table configs/table3_synthetic.yaml`` trains each method of the config (each a
full run through the training harness, in ``<run_dir>/<method>/``), collects every run's test AUC
on all items and on cold items, adds the rows every run computes beside its model (RAND,
PopRank, VisRank where the items have features, and the planted oracle on synthetic worlds), and
prints a table shaped like DVBPR's Table III, written to ``<run_dir>/table.md`` and
``table.json``. Methods trained on explicit ratings (Partial Dual, StyNet) give the rating table
instead (``evaluation.rating_table``): held-out RMSE beside the global-mean, bias and matrix
factorisation baselines, with each method's time to fit. Which table is the runs' evaluation
protocol's (``evaluation.protocols``: the "protocol" their metrics.json records), so every
method of a table must share one protocol. Finished method runs are reused, so a
table can be rebuilt or extended without retraining (``--overwrite`` retrains everything); an
interrupted one resumes. ``--sweep`` tunes one method on validation instead (``sweep_method``,
``training.sweep``).

Methods that read another run's output (PSA-Net reads a Partial Dual or StyNet run's customer
embeddings) name it: ``embedding_runs`` are trained first, in ``<run_dir>/<name>`` like methods,
but are not tabulated (their protocol may differ), and a method's ``model.customer_embeddings``
(or ``model.dvbpr_run``: the DVBPR run a design GAN reads, ``RUN_REFERENCES``) that is the name of
an embedding run (or of an earlier method) is pointed at that run's folder.
``paper_deltas`` (method -> the paper's change in % relative to ``proposed``) adds the paper's
layout above the table (PSA-Net's Table 1): each method's ``relative_metric`` and its change
relative to ``proposed`` in % beside the paper's. ``paper_values`` (method -> metric -> the
paper's number) adds each method's metrics beside the paper's own numbers instead (PAN's
Tables 1-2, whose datasets we do not have: the comparison is of orderings, not of values).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

from tfrec_fashion.config import load_config, tagged
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.model_configs import MODEL_CONFIGS
from tfrec_fashion.training.run_config import RunConfig, TrainConfig


#: Model config fields that name another run's folder; in a table they may name one of its runs.
RUN_REFERENCES = ("customer_embeddings", "dvbpr_run")


@dataclasses.dataclass
class MethodConfig:
    """One column of the table: a model, trained with ``train`` (null: the table's)."""

    model: object = tagged(MODEL_CONFIGS)
    train: Optional[TrainConfig] = None


@dataclasses.dataclass
class TableConfig:
    """A comparison table: ``methods`` (column name -> model) all trained on ``data``.

    Args:
        dataset_label: the table's row label for this dataset (default: the data source name).
        data: a registered data source; every method sees the same data and split (``seed``).
        train: training settings of methods that give none.
        methods: column name -> ``MethodConfig``, in the table's column order.
        proposed, reference: the improvement columns compare ``proposed`` with ``reference``
            and with the best other method (DVBPR's "h vs. d", "h vs. best").
        run_dir: the table's folder; method runs go in ``<run_dir>/<method>``.
        seed: the runs' seed.
        embedding_runs: name -> ``MethodConfig`` of runs trained before the methods and not
            tabulated; a method's ``model.customer_embeddings`` or ``model.dvbpr_run`` may name
            one (or an earlier method), meaning its run folder.
        paper_deltas: method -> the paper's change of ``relative_metric`` relative to
            ``proposed``, in %; when given, the table starts with the measured changes beside
            these.
        relative_metric: the metrics.json key those changes are of.
        paper_values: method -> {metrics.json key: the paper's value}; when given, the table
            starts with every method's values of those keys beside the paper's.
        paper_label: where ``paper_values`` come from (e.g. "Table 2, Polyvore-630").
    """

    methods: dict[str, MethodConfig] = dataclasses.field(default_factory=dict)
    data: object = tagged(DATA_SOURCES, default="synthetic")
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    dataset_label: str = ""
    proposed: str = "DVBPR"
    reference: str = "BPR-MF"
    run_dir: str = "runs/table"
    seed: int = 0
    embedding_runs: dict[str, MethodConfig] = dataclasses.field(default_factory=dict)
    paper_deltas: dict[str, float] = dataclasses.field(default_factory=dict)
    relative_metric: str = "test_customer_auc"
    paper_values: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    paper_label: str = "the paper"

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("the table config names no methods")
        clashes = set(self.embedding_runs) & set(self.methods)
        unknown = (set(self.paper_deltas) | set(self.paper_values)) - set(self.methods)
        if clashes or unknown:
            raise ValueError(f"embedding_runs must not reuse a method's name and paper_deltas "
                             f"and paper_values must name methods. Received: both {sorted(clashes)}, unknown "
                             f"{sorted(unknown)}")

    def run_config(self, method: str) -> RunConfig:
        entry = {**self.embedding_runs, **self.methods}[method]
        model = entry.model
        for field in RUN_REFERENCES:
            path = getattr(model, field, None)
            if path in self.embedding_runs or path in self.methods:
                model = dataclasses.replace(model, **{field: str(
                    Path(self.run_dir) / _folder(path))})
        return RunConfig(model=model, data=self.data, train=entry.train or self.train,
                         run_dir=str(Path(self.run_dir) / _folder(method)), seed=self.seed)


def run_table(config_path: str | Path, overrides: list[str] | tuple[str, ...] = (),
              overwrite: bool = False, methods: list[str] | None = None):
    """Trains (or reuses) every method's run and returns the table of their protocol (the
    ``RankingTable`` of the implicit protocol, the ``RatingTable`` of the rating protocol).

    Args:
        config_path: a ``TableConfig`` YAML file.
        overrides: ``--set key=value`` overrides.
        overwrite: retrain finished runs.
        methods: train only these methods (default all); the others' finished runs still
            fill their columns, so a table can be extended one method at a time.
    """
    from tfrec_fashion.evaluation.protocols import protocol_of
    from tfrec_fashion.training.harness import train

    config = load_config(TableConfig, config_path, overrides)
    chosen = _chosen_methods(config, methods)
    label = config.dataset_label or config.data.name
    run_dir = Path(config.run_dir)
    results: dict[str, dict] = {}
    for method in [*config.embedding_runs, *config.methods]:
        run = config.run_config(method)
        metrics_path = Path(run.run_dir) / "metrics.json"
        finished = metrics_path.exists() and _same_config(run)
        if finished and (method not in chosen or not overwrite):
            print(f"=== {method}: reusing the finished run in {run.run_dir}")
            results[method] = json.loads(metrics_path.read_text())
            continue
        if method not in chosen:
            continue
        print(f"\n=== {method}: training {run.model.name} on {label}", flush=True)
        started = time.time()
        result = train(run, overwrite=True)
        results[method] = {**result.metrics, "train_seconds": round(time.time() - started, 1)}
    for name in config.embedding_runs:
        results.pop(name, None)
    if not results:
        raise ConfigError("no method has a finished run to tabulate")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "runs.json").write_text(json.dumps(results, indent=2, default=float))
    protocols = {method: protocol_of(metrics) for method, metrics in results.items()}
    protocol = next(iter(protocols.values()))
    others = {method: p.name for method, p in protocols.items() if p is not protocol}
    if others:
        raise ConfigError(f"one table compares methods under one evaluation protocol; "
                          f"{next(iter(protocols))} is {protocol.name!r} but {others} differ")
    table = protocol.table(label, results, proposed=config.proposed,
                           reference=config.reference)
    if config.paper_deltas:
        table = PaperDeltas(table, results, config.proposed, config.paper_deltas,
                            config.relative_metric)
    if config.paper_values:
        table = PaperValues(table, results, config.paper_values, config.paper_label)
    table.write(run_dir)
    return table


@dataclasses.dataclass
class PaperValues:
    """A protocol's table with each method's metrics beside the paper's numbers above it.

    Args:
        table: the protocol's table of the same runs (``write``, ``format_markdown``).
        runs: method -> metrics.json content.
        paper: method -> {metrics.json key: the paper's value}; the columns are every key any
            method names, in first-seen order; methods without paper values print "-".
        label: where the paper's values come from.
    """

    table: object
    runs: dict[str, dict]
    paper: dict[str, dict[str, float]]
    label: str

    def metrics(self) -> list[str]:
        return list(dict.fromkeys(key for values in self.paper.values() for key in values))

    def rows(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """method -> metric -> {"ours", "paper"}."""
        return {method: {key: {"ours": float(m[key]) if key in m else None,
                               "paper": self.paper.get(method, {}).get(key)}
                         for key in self.metrics()}
                for method, m in self.runs.items()}

    def format_markdown(self) -> str:
        keys = self.metrics()
        lines = [f"Ours beside {self.label} (other data: compare orderings, not values)", "",
                 "| Method | " + " | ".join(f"{key} | paper" for key in keys) + " |",
                 "|---|" + "---:|---:|" * len(keys)]
        for method, row in self.rows().items():
            cells = []
            for key in keys:
                ours, paper = row[key]["ours"], row[key]["paper"]
                cells += ["-" if ours is None else f"{ours:.4f}",
                          "-" if paper is None else f"{paper:.4f}"]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n\n" + self.table.format_markdown()

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """The protocol's ``table.md`` (with this layout above it) and ``table.json`` (with
        ``"paper_values"``: these rows)."""
        markdown, data = self.table.write(directory)
        markdown.write_text(self.format_markdown())
        content = json.loads(data.read_text())
        data.write_text(json.dumps({**content, "paper_values": {
            "label": self.label, "rows": self.rows()}}, indent=2))
        return markdown, data


@dataclasses.dataclass
class PaperDeltas:
    """A protocol's table with the paper's layout above it: each method's ``metric`` and its
    change relative to ``proposed`` in %, beside the paper's change (PSA-Net's Table 1).

    Args:
        table: the protocol's table of the same runs (``write``, ``format_markdown``).
        runs: method -> metrics.json content.
        proposed: the method the changes are relative to.
        paper: method -> the paper's change in % (methods not in it print "-").
        metric: the metrics.json key compared.
    """

    table: object
    runs: dict[str, dict]
    proposed: str
    paper: dict[str, float]
    metric: str

    def rows(self) -> dict[str, dict[str, float | None]]:
        """method -> {"value", "delta" (measured % vs ``proposed``), "paper"}."""
        if self.proposed not in self.runs:
            raise ConfigError(f"paper_deltas are relative to proposed={self.proposed!r}, which "
                              f"has no finished run; the runs are {list(self.runs)}")
        base = float(self.runs[self.proposed][self.metric])
        return {method: {"value": float(m[self.metric]),
                         "delta": 100.0 * (float(m[self.metric]) - base) / base,
                         "paper": self.paper.get(method)}
                for method, m in self.runs.items()}

    def format_markdown(self) -> str:
        lines = [f"{self.metric} relative to {self.proposed} (the paper's Table 1 layout)", "",
                 f"| Method | {self.metric} | vs. {self.proposed} | paper |",
                 "|---|---:|---:|---:|"]
        for method, row in self.rows().items():
            paper = "-" if row["paper"] is None else f"{row['paper']:+.2f}%"
            delta = "-" if method == self.proposed else f"{row['delta']:+.2f}%"
            lines.append(f"| {method} | {row['value']:.4f} | {delta} | {paper} |")
        return "\n".join(lines) + "\n\n" + self.table.format_markdown()

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """The protocol's ``table.md`` (with this layout above it) and ``table.json`` (with
        ``"relative"``: these rows)."""
        markdown, data = self.table.write(directory)
        markdown.write_text(self.format_markdown())
        content = json.loads(data.read_text())
        data.write_text(json.dumps({**content, "relative": {
            "metric": self.metric, "proposed": self.proposed, "rows": self.rows()}}, indent=2))
        return markdown, data


def sweep_method(config_path: str | Path, overrides: list[str] | tuple[str, ...],
                 specs: list[str], methods: list[str] | None = None, overwrite: bool = False):
    """Tunes one method of the table on validation (``training.sweep``): every point of the
    ``--sweep`` grid, applied to the table config, trains that method into
    ``<run_dir>/sweep/<method>/<point>/``. Returns the ``SweepResult`` and that folder.

    Args:
        config_path: a ``TableConfig`` YAML file.
        overrides: ``--set key=value`` overrides, applied before each point's.
        specs: ``--sweep KEY=V1,V2,...`` specs with the table's keys, e.g.
            ``methods.BPR-MF.model.l2_latent=0.01,0.05`` or ``train.learning_rate=...`` (the
            table's training settings, which methods without their own ``train`` use).
        methods: the one method to tune (may be omitted when the table has one).
        overwrite: retrain finished points.
    """
    from tfrec_fashion.training.sweep import run_sweep, sweep_points

    config = load_config(TableConfig, config_path, overrides)
    chosen = _chosen_methods(config, methods)
    if len(chosen) != 1:
        raise ConfigError(f"--sweep tunes one method at a time; name it with --methods (the "
                          f"config has {list(config.methods)})")
    sweep_dir = Path(config.run_dir) / "sweep" / _folder(chosen[0])
    points = sweep_points(specs, lambda point: load_config(
        TableConfig, config_path, [*overrides, *point]).run_config(chosen[0]), sweep_dir)
    return run_sweep(points, sweep_dir, overwrite=overwrite), sweep_dir


def _chosen_methods(config: TableConfig, methods: list[str] | None) -> list[str]:
    names = [*config.embedding_runs, *config.methods]
    chosen = names if methods is None else methods
    unknown = [m for m in chosen if m not in names]
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r}; the config has {names}")
    return chosen


def _folder(method: str) -> str:
    return "".join(c.lower() if c.isalnum() else "_" for c in method).strip("_")


def _same_config(run: RunConfig) -> bool:
    """Whether a finished run in ``run.run_dir`` was trained with this very config."""
    from tfrec_fashion.training.harness import config_differences

    saved = Path(run.run_dir) / "config.yaml"
    return saved.exists() and not config_differences(run.run_dir, run)
