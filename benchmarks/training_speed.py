"""Training speed of BPR-MF and VBPR: the old train settings against the new ones, in one run.

    .venv/bin/python benchmarks/training_speed.py [--json] [--models bpr_mf,vbpr] [--repeats 3]
    .venv/bin/python benchmarks/training_speed.py --tiny     # a small world, a few epochs

For each model it trains twice through the harness (``training.harness.train``, the path
``tfrec-fashion train`` takes, into a temporary run directory), first with the old settings
(the baseline, measured in the same run on the same machine), then with the new ones, and prints
per setting:

- steps/s and triplets/s of the training step alone: ``fit`` over the sampled tf.data pipeline
  with no callbacks, after a warm-up epoch;
- the harness run's fit seconds (validation, checkpoints and logs included; the least of
  ``--repeats`` runs, which train alike: a shared machine's load only ever adds time), epochs
  run and seconds per epoch;
- its best validation AUC (what picks the epoch and the settings) and test AUC;

and the ratios new / old. The models:

- BPR-MF on MovieLens-100K (``configs/bpr_mf_movielens.yaml``, the leave-one-out split of
  Table III; needs ``tfrec-fashion data fetch movielens-100k``): old = the train block of
  ``configs/table3_movielens.yaml`` (batch 256, 300 steps, lr 0.005, validation every epoch),
  new = the config file's own train block.
- VBPR on the planted world (``configs/vbpr.yaml``): old = that file's train block, new = the
  same with ``train.steps_per_execution: 300`` (``VBPR_NEW``): the same updates in fewer calls,
  hence the same AUC (batches of 2048-8192 with a retuned learning rate trained 1.6-2.6x faster
  but lost 0.003-0.010 of validation AUC there, so they are not the new settings).

Both settings run on today's code, so the ratios are what the settings buy; the code's own
speed-ups (the sort-free leave-one-out AUC, one embedding lookup per step) are in both columns.
Timings on a shared machine move with its load: compare the ratios, within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfrec_fashion  # noqa: E402,F401  (Keras 2 before TensorFlow loads)

from tfrec_fashion.config import apply_overrides, from_dict, read_yaml  # noqa: E402
from tfrec_fashion.training import harness  # noqa: E402
from tfrec_fashion.training.recipes import get_recipe  # noqa: E402
from tfrec_fashion.training.run_config import RunConfig  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: The train settings before the speed work (configs/table3_movielens.yaml's BPR-MF column).
BPR_MF_OLD = {"epochs": 30, "batch_size": 256, "steps_per_epoch": 300, "learning_rate": 0.005,
              "early_stopping_patience": 5, "validation_freq": 1, "steps_per_execution": 1}
#: VBPR's new settings: configs/vbpr.yaml's updates, 300 steps per call of the train function
#: (the same run, so the same AUC: larger batches lost validation AUC on the planted world).
VBPR_NEW = {"steps_per_execution": 300}

#: --tiny: both models on the planted world's tiny preset (``SyntheticWorldConfig.tiny``),
#: two epochs of a few steps.
TINY_DATA = {"name": "synthetic", "seed": 0, "n_users": 100, "n_items": 200, "n_time_epochs": 4,
             "mean_interactions_per_user": 15.0, "ratings_per_user": 20,
             "pair_ratings_per_user": 16, "n_expert_pairs": 1000, "outfits_per_user": 3,
             "outfit_candidates": 32}
TINY_TRAIN = {"epochs": 2, "steps_per_epoch": 4, "early_stopping_patience": 0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="bpr_mf,vbpr",
                        help="comma-separated: bpr_mf (MovieLens-100K), vbpr (planted world)")
    parser.add_argument("--tiny", action="store_true",
                        help="a small world, a few steps: the script runs (the suite's test)")
    parser.add_argument("--timing-epochs", type=int,
                        help="epochs timed for steps/s (default 3; tiny 1)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="harness runs per setting; the least fit seconds is reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: {args.repeats}")
    if args.timing_epochs is None:
        args.timing_epochs = 1 if args.tiny else 3
    return args


def settings(model: str, tiny: bool) -> tuple[Path, dict, dict]:
    """(config file, old train overrides, new train overrides) of ``model``."""
    if model == "bpr_mf":
        path = CONFIGS / "bpr_mf_movielens.yaml"
        old, new = BPR_MF_OLD, {}
    elif model == "vbpr":
        path = CONFIGS / "vbpr.yaml"
        old, new = {}, VBPR_NEW
    else:
        raise SystemExit(f"--models: unknown model {model!r}; choose from bpr_mf, vbpr")
    if tiny:
        old, new = {**old, **TINY_TRAIN}, {**new, **TINY_TRAIN}
    return path, old, new


def run_config(path: Path, train: dict, run_dir: Path, tiny: bool) -> RunConfig:
    data = read_yaml(path)
    if tiny:
        data["data"] = dict(TINY_DATA)
    overrides = [f"train.{key}={value}" for key, value in train.items()]
    return from_dict(RunConfig, apply_overrides(
        data, [*overrides, "train.verbose=0", f"run_dir={run_dir}"]), source=str(path))


def step_rate(config: RunConfig, epochs: int) -> dict:
    """steps/s and triplets/s of ``fit`` on the training pipeline alone (no callbacks)."""
    train = config.train
    harness.set_seeds(config.seed, train.deterministic)
    recipe = get_recipe(config.model, train, config.seed)
    recipe.prepare(config.data.build())
    model = recipe.build_model()
    model.compile(optimizer=harness.make_optimizer(train),
                  steps_per_execution=train.steps_per_execution, jit_compile=train.jit_compile)
    data, _ = recipe.datasets()
    model.fit(data, epochs=1, steps_per_epoch=train.steps_per_epoch, verbose=0)  # warm-up
    started = time.perf_counter()
    model.fit(data, epochs=epochs, steps_per_epoch=train.steps_per_epoch, verbose=0)
    seconds = time.perf_counter() - started
    steps = epochs * train.steps_per_epoch
    return {"steps_per_second": steps / seconds,
            "triplets_per_second": steps * train.batch_size / seconds}


def measure(model: str, label: str, config: RunConfig, timing_epochs: int,
            repeats: int = 1) -> dict:
    rates = step_rate(config, timing_epochs)
    runs = [harness.train(config, overwrite=True).metrics for _ in range(repeats)]
    metrics = min(runs, key=lambda run: run["fit_seconds"])
    train = config.train
    return {"model": model, "settings": label, "batch_size": train.batch_size,
            "steps_per_epoch": train.steps_per_epoch, "learning_rate": train.learning_rate,
            "validation_freq": train.validation_freq,
            "steps_per_execution": train.steps_per_execution, **rates,
            "fit_seconds": metrics["fit_seconds"],
            "fit_seconds_of_repeats": [run["fit_seconds"] for run in runs],
            "epochs_run": metrics["epochs_run"],
            "seconds_per_epoch": metrics["fit_seconds"] / max(1, metrics["epochs_run"]),
            "best_val_auc": metrics["best_val_auc"], "test_auc": metrics["test_auc"]}


def ratios(old: dict, new: dict) -> dict:
    return {"model": new["model"],
            "triplets_per_second": new["triplets_per_second"] / old["triplets_per_second"],
            "fit_seconds": new["fit_seconds"] / old["fit_seconds"] if old["fit_seconds"] else None,
            "test_auc_change": new["test_auc"] - old["test_auc"],
            "best_val_auc_change": new["best_val_auc"] - old["best_val_auc"]}


def print_table(results: list[dict], compared: list[dict], tiny: bool = False) -> None:
    print(f"{'model':7} {'settings':8} {'batch':>6} {'steps':>5} {'lr':>6} {'val/N':>5} "
          f"{'spe':>4} {'steps/s':>8} {'triplets/s':>11} {'fit s':>6} {'epochs':>6} "
          f"{'s/epoch':>7} {'val AUC':>7} {'test AUC':>8}")
    for r in results:
        print(f"{r['model']:7} {r['settings']:8} {r['batch_size']:6d} {r['steps_per_epoch']:5d} "
              f"{r['learning_rate']:6.3f} {r['validation_freq']:5d} {r['steps_per_execution']:4d} "
              f"{r['steps_per_second']:8.1f} {r['triplets_per_second']:11,.0f} "
              f"{r['fit_seconds']:6.1f} {r['epochs_run']:6d} {r['seconds_per_epoch']:7.2f} "
              f"{r['best_val_auc']:7.4f} {r['test_auc']:8.4f}")
    print("\nnew / old, measured in this run:")
    for c in compared:
        fit = "n/a" if c["fit_seconds"] is None else f"{c['fit_seconds']:.2f}x"
        print(f"  {c['model']:7} triplets/s {c['triplets_per_second']:.2f}x, fit seconds {fit}, "
              f"test AUC {c['test_auc_change']:+.4f}, best val AUC "
              f"{c['best_val_auc_change']:+.4f}")
    if not tiny and any(c["model"] == "bpr_mf" for c in compared):
        print("\nPeer (issue 22, same split, 2 cores): Cornac's BPR fits in 6.6 s at test AUC "
              "0.888; benchmarks/peers.py measures it beside ours in one run.")


def main(argv=None) -> dict:
    args = parse_args(argv)
    results, compared = [], []
    with tempfile.TemporaryDirectory(prefix="training_speed_") as folder:
        for model in args.models.split(","):
            path, old, new = settings(model.strip(), args.tiny)
            pair = []
            for label, train in (("old", old), ("new", new)):
                config = run_config(path, train, Path(folder) / f"{model}_{label}", args.tiny)
                pair.append(measure(model, label, config, args.timing_epochs, args.repeats))
                results.append(pair[-1])
            compared.append(ratios(*pair))
    report = {"tiny": args.tiny, "results": results, "ratios": compared}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_table(results, compared, args.tiny)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
