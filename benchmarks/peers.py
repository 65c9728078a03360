"""Benchmark: our BPR-MF, Partial Dual and StyNet beside the peer libraries, on the project's own
MovieLens-100K splits, in one run, every metric computed by our evaluation code.

    .venv/bin/python benchmarks/peers.py [--quick] [--run-dir runs/peers] [--venv DIR]

- **Ranking** (the implicit protocol of DVBPR's Table III, ``evaluation.implicit``: every rating
  is an interaction, leave-one-out by time, per-user AUC on all and cold items): our BPR-MF
  trained from ``configs/bpr_mf_movielens.yaml`` beside Cornac's BPR and ``implicit``'s BPR and
  ALS at the same latent dimension, fitted on the same training interactions.
- **Ratings** (the rating protocol of Partial Dual and StyNet, ``evaluation.ratings``: each
  customer's 1..5 ratings split 80/10/10 at random, RMSE of clipped predictions): Partial Dual
  and StyNet as ``configs/table_ratings_movielens.yaml`` trains them, beside Cornac's MF and SVD
  and scikit-surprise's SVD with Partial Dual's certified rank as their number of factors
  (equal rank budget), fitted on the same training ratings.

Each peer runs at its library's documented defaults (the latent dimension aside) and over a small
grid around them (``RANKING_GRIDS``, ``RATING_GRIDS``); the table shows the defaults and, where
another point wins on validation (AUC / RMSE by our code, never test), that point, as our own
settings were chosen. ``--quick`` runs the defaults only, at a few epochs: a smoke run.

The peers run in a virtual environment this script builds (``PEER_REQUIREMENTS``, default
``$TFREC_FASHION_HOME/peers-venv``), as a subprocess (``benchmarks/peers_runner.py``): this
process never imports them, so our venv's pins stay clean. The split goes over as an .npz, the
peers' factors (ranking) or predictions (ratings) and fit seconds come back as one, and our
code scores them: the same held-out items, exclusions and clipping as our models. Microsoft
Recommenders' RLRMC is tried against the pins and skipped with the resolver's reason when it
does not fit (``RECOMMENDERS_NOTE``).

Fit seconds are each library's fit call (ours: ``model.fit`` with its per-epoch validation
AUC, or Partial Dual's solver to its certified gap); throughput is training samples (BPR
triplets, or ratings / interactions per epoch) over fit seconds. Everything is measured in
this one run on this machine's cores; the script prints ratios against the peers and the
issue's targets (issue 22) as MET / MISSED with the margin, and writes ``<run-dir>/peers.json``
and ``<run-dir>/table.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
from tfrec_fashion.data.wheels import data_home

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).resolve().with_name("peers_runner.py")
BPR_CONFIG = ROOT / "configs" / "bpr_mf_movielens.yaml"
RATINGS_CONFIG = ROOT / "configs" / "table_ratings_movielens.yaml"

#: The peer venv's pins (resolved together on Python 3.11: these wheels, NumPy 2).
PEER_REQUIREMENTS = ("cornac==3.0.1", "implicit==0.7.3", "scikit-surprise==1.1.5",
                     "numpy==2.4.6", "scipy==1.17.1")

#: Why RLRMC is not in the peer venv (checked by hand on 2026-12-05, Python 3.11; the script
#: re-asks pip's resolver each run and prints its answer beside this).
RECOMMENDERS_NOTE = (
    "recommenders 1.2.1 requires cornac<3 (1.2.0: cornac<2), against cornac==3.0.1 here; in a "
    "venv of its own it installs (cornac 2.6.0, pymanopt 2.2.1, with jupyter, lightgbm, "
    "transformers), but RLRMC then fails to import: 'No module named pymanopt.solvers' "
    "(pymanopt 2.x); pymanopt 0.2.5 (the newest 0.x release) lacks "
    "manifolds.SymmetricPositiveDefinite; recommenders' README asks for a pymanopt GitHub "
    "commit archive, which no registry pin gives")

# Peers' hyper-parameters: each library's documented defaults except the latent dimension,
# which is ours (ranking) or Partial Dual's certified rank (ratings); then a small grid around
# them, picked on validation (AUC / RMSE by our code) as our own models' settings were.
QUICK_ITERATIONS = {"cornac_bpr": 10, "implicit_bpr": 10, "implicit_als": 3, "cornac_mf": 5,
                    "cornac_svd": 5, "surprise_svd": 5}
RANKING_GRIDS = {
    "cornac_bpr": {"learning_rate": (0.001, 0.01, 0.05, 0.1), "lambda_reg": (0.001, 0.01)},
    "implicit_bpr": {"learning_rate": (0.003, 0.01, 0.05), "regularization": (0.001, 0.01)},
    "implicit_als": {"regularization": (0.01, 0.1, 1.0), "alpha": (1.0, 10.0, 40.0)},
}
RATING_GRIDS = {
    "cornac_mf": {"lambda_reg": (0.02, 0.05, 0.1, 0.2), "max_iter": (20, 50, 100)},
    "surprise_svd": {"reg_all": (0.02, 0.05, 0.1, 0.2), "n_epochs": (20, 50, 100)},
}


def ranking_peers(latent_dim: int, quick: bool = False) -> dict[str, dict[str, Any]]:
    """Cornac BPR (docs defaults: max_iter 100, learning_rate 0.001, lambda_reg 0.01, item
    biases), implicit BPR (iterations 100, learning_rate 0.01, regularization 0.01) and implicit
    ALS (iterations 15, regularization 0.01, alpha 1.0), each with ``latent_dim`` factors."""
    peers = {
        "cornac_bpr": {"k": latent_dim, "max_iter": 100, "learning_rate": 0.001,
                       "lambda_reg": 0.01, "use_bias": True},
        "implicit_bpr": {"factors": latent_dim, "iterations": 100, "learning_rate": 0.01,
                         "regularization": 0.01},
        "implicit_als": {"factors": latent_dim, "iterations": 15, "regularization": 0.01,
                         "alpha": 1.0},
    }
    return _quick(peers) if quick else peers


def rating_peers(rank: int, quick: bool = False) -> dict[str, dict[str, Any]]:
    """Cornac MF (docs defaults: max_iter 20, learning_rate 0.01, lambda_reg 0.02, biases),
    Cornac SVD (the same defaults) and surprise SVD (n_epochs 20, lr_all 0.005, reg_all 0.02,
    biased), each with ``rank`` factors; RLRMC (``RECOMMENDERS_NOTE``) when installed."""
    peers = {
        "cornac_mf": {"k": rank, "max_iter": 20, "learning_rate": 0.01, "lambda_reg": 0.02,
                      "use_bias": True},
        "cornac_svd": {"k": rank, "max_iter": 20, "learning_rate": 0.01, "lambda_reg": 0.02},
        "surprise_svd": {"n_factors": rank, "n_epochs": 20, "lr_all": 0.005, "reg_all": 0.02},
        "rlrmc": {"rank": rank},
    }
    return _quick(peers) if quick else peers


def _quick(peers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for name, params in peers.items():
        for key in ("max_iter", "iterations", "n_epochs"):
            if key in params:
                params[key] = QUICK_ITERATIONS[name]
    return peers


def with_grids(defaults: Mapping[str, Mapping[str, Any]],
               grids: Mapping[str, Mapping[str, Sequence[Any]]]) -> dict[str, dict[str, Any]]:
    """Each peer's defaults (named as the peer) and, named ``peer@key=value,...``, every point
    of its grid that differs from them (the other settings kept at the defaults)."""
    out = {name: dict(params) for name, params in defaults.items()}
    for name, grid in grids.items():
        if name not in defaults:
            continue
        keys = list(grid)
        for values in itertools.product(*(grid[key] for key in keys)):
            point = dict(zip(keys, values))
            if all(defaults[name][key] == value for key, value in point.items()):
                continue
            tag = ",".join(f"{key}={value:g}" for key, value in point.items())
            out[f"{name}@{tag}"] = {**defaults[name], **point}
    return out


def family(name: str) -> str:
    return name.split("@")[0]


def validation_best(rows: Sequence[Mapping[str, Any]], key: str, mode: str
                    ) -> dict[str, Mapping[str, Any]]:
    """Peer family -> its row with the best ``key`` (validation metric; mode "max" or "min")
    among the rows that ran; ties go to the first (the defaults come first)."""
    best: dict[str, Mapping[str, Any]] = {}
    sign = 1.0 if mode == "max" else -1.0
    for row in rows:
        if "skipped" in row or row.get(key) is None:
            continue
        current = best.get(family(row["peer"]))
        if current is None or sign * row[key] > sign * current[key]:
            best[family(row["peer"])] = row
    return best


def shown_rows(rows: Sequence[Mapping[str, Any]], key: str, mode: str) -> list[dict]:
    """The rows the table shows: each peer at its defaults, then, where another grid point won
    on validation, that point (labelled as tuned)."""
    best = validation_best(rows, key, mode)
    gridded = {family(row["peer"]) for row in rows if "@" in row["peer"]}
    shown = []
    for row in rows:
        if "@" in row["peer"] or "skipped" in row:
            continue
        label = LABELS.get(row["peer"], row["peer"])
        winner = best.get(row["peer"])
        defaults_won = winner is row and row["peer"] in gridded
        shown.append({**row, "short": f"{label} (defaults)", "method": row["method"] + (
            ", defaults (also the validation best)" if defaults_won else ", defaults")})
        if winner is not None and winner is not row:
            tag = winner["peer"].split("@", 1)[1]
            shown.append({**winner, "short": f"{label} (tuned)",
                          "method": f"{row['method']}, tuned on validation: {tag}"})
    return shown


def _name(row: Mapping[str, Any]) -> str:
    return row.get("short", row["method"])


LABELS = {"cornac_bpr": "Cornac BPR", "implicit_bpr": "implicit BPR",
          "implicit_als": "implicit ALS", "cornac_mf": "Cornac MF", "cornac_svd": "Cornac SVD",
          "surprise_svd": "surprise SVD", "rlrmc": "Recommenders RLRMC"}
UNITS = {"cornac_bpr": "triplets/s", "implicit_bpr": "triplets/s",
         "implicit_als": "interactions/s", "cornac_mf": "ratings/s", "cornac_svd": "ratings/s",
         "surprise_svd": "ratings/s", "rlrmc": "ratings/s"}


# ---------------------------------------------------------------------------- the peer venv
def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_peer_venv(venv: Path, requirements: Sequence[str] = PEER_REQUIREMENTS) -> Path:
    """Builds (or reuses) the peers' virtual environment and returns its Python.

    A stamp file holds a hash of ``requirements``; a venv with another stamp is rebuilt.
    """
    stamp = venv / ".tfrec-fashion-peers"
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    python = venv_python(venv)
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(f"Building the peer venv in {venv} ({' '.join(requirements)}); under a minute "
          "with a warm pip cache", flush=True)
    started = time.perf_counter()
    subprocess.run([_base_python(), "-m", "venv", "--clear", str(venv)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", *requirements],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install the peers into {venv}:\n"
                           f"{_pip_errors(done.stderr)}")
    stamp.write_text(wanted + "\n")
    print(f"Peer venv built in {time.perf_counter() - started:.0f} s", flush=True)
    return python


def _base_python() -> str:
    """The interpreter our venv was made from, so the peer venv does not depend on ours."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _pip_errors(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if not line.startswith("WARNING: Location")]
    return "\n".join(lines[-25:])


def recommenders_check(python: Path, requirements: Sequence[str] = PEER_REQUIREMENTS) -> str:
    """Asks pip's resolver (``--dry-run``, nothing installed) whether ``recommenders`` fits the
    peer venv's pins; returns "" when it does, else the resolver's reason in one line."""
    done = subprocess.run([str(python), "-m", "pip", "install", "--dry-run",
                           "--disable-pip-version-check", "recommenders", *requirements],
                          capture_output=True, text=True)
    if done.returncode == 0:
        return ""
    reasons = [line.strip().removeprefix("ERROR: ").rstrip(".")
               for line in done.stderr.splitlines()
               if " depends on " in line or "Cannot install" in line]
    return "; ".join(dict.fromkeys(reasons)) or _pip_errors(done.stderr)


def run_peers(python: Path, split_path: Path, out_path: Path) -> dict[str, Any]:
    """Runs ``peers_runner.py`` on ``split_path`` in the peer venv; returns its output."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # implicit asks for single-threaded BLAS (it parallelises itself).
    env.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    subprocess.run([str(python), str(RUNNER), str(split_path), str(out_path)], env=env,
                   check=True)
    return read_npz(out_path)


# ---------------------------------------------------------------------------- split exchange
def export_split(path: str | Path, protocol: str, n_users: int, n_items: int, seed: int,
                 methods: Mapping[str, Mapping[str, Any]], **arrays: np.ndarray) -> Path:
    """Writes what ``peers_runner.py`` reads: the split's arrays and the peers' settings."""
    if protocol not in ("implicit", "ratings"):
        raise ValueError(f"protocol must be 'implicit' or 'ratings'. Received: {protocol!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, protocol=np.array(protocol), n_users=np.array(n_users),
             n_items=np.array(n_items), seed=np.array(seed),
             methods=np.array(json.dumps(methods)), **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def read_npz(path: str | Path) -> dict[str, Any]:
    """An .npz as a dict; 0-d arrays become Python scalars / strings, ``methods`` and
    ``versions`` are parsed from JSON."""
    with np.load(path, allow_pickle=False) as stored:
        out: dict[str, Any] = {}
        for key in stored.files:
            value = stored[key]
            out[key] = value.item() if value.ndim == 0 else value
    for key in ("methods", "versions"):
        if key in out:
            out[key] = json.loads(out[key])
    return out


def implicit_split_arrays(split) -> dict[str, np.ndarray]:
    """The training interactions of a ``data.splits.ImplicitSplit`` (what the peers fit)."""
    return {"train_user": split.train.user.astype(np.int32),
            "train_item": split.train.item.astype(np.int32)}


def rating_split_arrays(split, rating_range: tuple[float, float]) -> dict[str, np.ndarray]:
    """A ``data.splits.RatingSplit``: training ratings and the held-out pairs to predict."""
    return {"train_user": split.train.user.astype(np.int32),
            "train_item": split.train.item.astype(np.int32),
            "train_value": split.train.value.astype(np.float32),
            "rating_range": np.asarray(rating_range, np.float64),
            "test_user": split.test.user.astype(np.int32),
            "test_item": split.test.item.astype(np.int32),
            "validation_user": split.validation.user.astype(np.int32),
            "validation_item": split.validation.item.astype(np.int32)}


def peer_outputs(out: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One peer's entries of the runner's output (``P__key`` -> ``key``)."""
    prefix = f"{name}__"
    return {key[len(prefix):]: value for key, value in out.items() if key.startswith(prefix)}


# ---------------------------------------------------------------------------- scoring
def ranking_metrics(evaluation, user_factors: np.ndarray, item_factors: np.ndarray
                    ) -> dict[str, float]:
    """Test AUC on all and cold items and validation AUC of scores ``user_factors @
    item_factors.T`` by our implicit protocol (``ImplicitEvaluation.auc``: our models' path)."""
    users = np.asarray(user_factors, np.float32)
    items = np.asarray(item_factors, np.float32)
    return {"test_auc": evaluation.auc(users, lambda _epoch: items, "test"),
            "cold_test_auc": evaluation.auc(users, lambda _epoch: items, "test", cold=True),
            "val_auc": evaluation.auc(users, lambda _epoch: items, "validation")}


# ---------------------------------------------------------------------------- report
def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]
                 ) -> str:
    """A Markdown table of ``rows`` over ``columns`` (header, key, format); missing values
    (None, NaN) print as "-"."""
    lines = ["| " + " | ".join(header for header, _, _ in columns) + " |",
             "|" + "|".join("---" if not fmt else "---:" for _, _, fmt in columns) + "|"]
    for row in rows:
        cells = []
        for _, key, fmt in columns:
            value = row.get(key)
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            cells.append("-" if missing else format(value, fmt) if fmt else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


RANKING_COLUMNS = (("method", "method", ""), ("val AUC", "val_auc", ".4f"),
                   ("test AUC", "test_auc", ".4f"),
                   ("cold test AUC", "cold_test_auc", ".4f"), ("fit s", "fit_seconds", ".1f"),
                   ("throughput", "throughput", ",.0f"), ("unit", "unit", ""))
RATING_COLUMNS = (("method", "method", ""), ("val RMSE", "val_rmse", ".4f"),
                  ("test RMSE", "test_rmse", ".4f"),
                  ("test MAE", "test_mae", ".4f"), ("fit s", "fit_seconds", ".1f"),
                  ("throughput", "throughput", ",.0f"), ("unit", "unit", ""))


def throughput(samples: float | None, seconds: float | None) -> float | None:
    if samples is None or not seconds:
        return None
    return samples / seconds


def ranking_ratios(ours: Mapping[str, Any], peers: Sequence[Mapping[str, Any]]) -> list[str]:
    """Our AUC minus each peer's and our fit time over each peer's."""
    return [f"{_name(ours)} vs. {_name(peer)}: AUC {ours['test_auc'] - peer['test_auc']:+.4f}, "
            f"fit time {ours['fit_seconds'] / peer['fit_seconds']:.2f}x"
            for peer in peers if peer.get("test_auc") is not None]


def rating_ratios(ours: Sequence[Mapping[str, Any]], peers: Sequence[Mapping[str, Any]]
                  ) -> list[str]:
    """Each of our rating models' RMSE minus each peer's, and fit time over the peer's."""
    return [f"{_name(model)} vs. {_name(peer)}: RMSE "
            f"{model['test_rmse'] - peer['test_rmse']:+.4f}, fit time "
            f"{model['fit_seconds'] / peer['fit_seconds']:.2f}x"
            for model in ours for peer in peers if peer.get("test_rmse") is not None]


def target_lines(bpr: Mapping[str, Any], cornac_rows: Sequence[Mapping[str, Any]],
                 partial_dual: Mapping[str, Any] | None,
                 rating_peer_rows: Sequence[Mapping[str, Any]], max_fit_ratio: float = 2.0
                 ) -> list[str]:
    """Issue 22's targets, each MET or MISSED with by how much: BPR-MF against each Cornac BPR
    row (defaults, tuned), Partial Dual against every rating peer's row."""
    lines = []
    for cornac_bpr in cornac_rows:
        gap = bpr["test_auc"] - cornac_bpr["test_auc"]
        lines.append(f"{'MET' if gap >= 0 else 'MISSED'}: BPR-MF test AUC "
                     f"{bpr['test_auc']:.4f} at or above {_name(cornac_bpr)}'s "
                     f"{cornac_bpr['test_auc']:.4f} (" + (
                         f"by {gap:.4f})" if gap >= 0 else f"short by {-gap:.4f})"))
        ratio = bpr["fit_seconds"] / cornac_bpr["fit_seconds"]
        over = bpr["fit_seconds"] - max_fit_ratio * cornac_bpr["fit_seconds"]
        lines.append(f"{'MET' if ratio <= max_fit_ratio else 'MISSED'}: BPR-MF fit "
                     f"{bpr['fit_seconds']:.1f} s within {max_fit_ratio:g}x "
                     f"{_name(cornac_bpr)}'s "
                     f"{cornac_bpr['fit_seconds']:.1f} s ({ratio:.2f}x" + (
                         ")" if ratio <= max_fit_ratio else
                         f", {over:.1f} s over the {max_fit_ratio:g}x budget)"))
    if not cornac_rows:
        lines.append("NOT CHECKED: Cornac BPR did not run")
    if partial_dual is None:
        return lines + ["NOT CHECKED: Partial Dual did not run"]
    for peer in rating_peer_rows:
        if peer.get("test_rmse") is None:
            continue
        gap = partial_dual["test_rmse"] - peer["test_rmse"]
        lines.append(f"{'MET' if gap <= 0 else 'MISSED'}: Partial Dual RMSE "
                     f"{partial_dual['test_rmse']:.4f} at or below {_name(peer)}'s "
                     f"{peer['test_rmse']:.4f} (" + (
                         f"by {-gap:.4f})" if gap <= 0 else f"above by {gap:.4f})"))
    return lines


# ---------------------------------------------------------------------------- the run
def train_bpr_mf(run_dir: Path, quick: bool):
    from tfrec_fashion.config import load_config
    from tfrec_fashion.training.harness import train
    from tfrec_fashion.training.run_config import RunConfig

    overrides = ["train.epochs=3", "train.verbose=0"] if quick else []
    config = load_config(RunConfig, BPR_CONFIG, overrides)
    print(f"\n=== BPR-MF: {BPR_CONFIG.relative_to(ROOT)} -> {run_dir}", flush=True)
    return config, train(config, run_dir=run_dir, overwrite=True)


def train_rating_model(method: str, run_dir: Path, quick: bool):
    from tfrec_fashion.config import load_config
    from tfrec_fashion.tables import TableConfig
    from tfrec_fashion.training.harness import train

    overrides = []
    if quick:
        overrides = ({"Partial Dual": ["methods.Partial Dual.model.max_iterations=20"],
                      "StyNet": ["train.epochs=2"]}[method])
    table = load_config(TableConfig, RATINGS_CONFIG, overrides)
    config = table.run_config(method)
    print(f"\n=== {method}: {RATINGS_CONFIG.relative_to(ROOT)} -> {run_dir}", flush=True)
    return table, train(config, run_dir=run_dir, overwrite=True)


def bpr_triplets(config, metrics: Mapping[str, Any], n_train: int) -> int:
    """Triplets our BPR-MF drew: epochs x (steps_per_epoch x batch, or one pass)."""
    per_epoch = (config.train.steps_per_epoch * config.train.batch_size
                 if config.train.steps_per_epoch else n_train)
    return int(metrics["epochs_run"]) * per_epoch


def run_ranking(python: Path, run_dir: Path, quick: bool) -> tuple[dict, list[dict], dict]:
    from tfrec_fashion.evaluation.implicit import ImplicitEvaluation

    config, result = train_bpr_mf(run_dir / "bpr_mf", quick)
    metrics = result.metrics
    evaluation = ImplicitEvaluation(result.dataset, seed=config.seed, model_name="peers")
    split = evaluation.split
    latent_dim = config.model.latent_dim
    train_config = config.train
    every = getattr(train_config, "validation_freq", 1)
    label = (f"BPR-MF (ours, d={latent_dim}, batch {train_config.batch_size}, "
             f"{metrics['epochs_run']} epochs" + (f", validated every {every}" if every > 1 else "")
             + ")")
    ours = {"method": label, "short": "BPR-MF",
            "test_auc": metrics["test_auc"], "val_auc": metrics.get("best_val_auc"),
            "cold_test_auc": metrics["cold_test_auc"], "fit_seconds": metrics["fit_seconds"],
            "unit": "triplets/s", "epochs": metrics["epochs_run"],
            "best_epoch": metrics.get("best_epoch")}
    ours["throughput"] = throughput(bpr_triplets(config, metrics, len(split.train)),
                                    metrics["fit_seconds"])
    defaults = ranking_peers(latent_dim, quick)
    peers = defaults if quick else with_grids(defaults, RANKING_GRIDS)
    split_path = export_split(run_dir / "implicit_split.npz", "implicit", split.n_users,
                              split.n_items, config.seed, peers, **implicit_split_arrays(split))
    print(f"\n=== ranking peers ({len(split.train)} training interactions, "
          f"{split.n_users} users x {split.n_items} items)", flush=True)
    out = run_peers(python, split_path, run_dir / "implicit_peers.npz")

    def metrics(got: dict) -> dict:
        found = ranking_metrics(evaluation, got["user_factors"], got["item_factors"])
        if "unseen_items" in got:
            found["unseen_items"] = int(got["unseen_items"])
        return found

    return ours, peer_rows(peers, out, f"d={latent_dim}", metrics), out.get("versions", {})


def peer_rows(peers: dict[str, dict], out: dict, budget: str,
              metrics: Callable[[dict], dict]) -> list[dict]:
    """One table row per peer run: its label (with the latent ``budget``), settings and unit,
    then either why it was skipped or ``metrics(its outputs)``, its fit seconds and throughput."""
    rows = []
    for name, params in peers.items():
        got = peer_outputs(out, name)
        row = {"method": f"{LABELS[family(name)]} ({budget})", "peer": name,
               "params": params, "unit": UNITS[family(name)]}
        if "skipped" in got:
            row["skipped"] = got["skipped"]
        else:
            row.update(metrics(got))
            row["fit_seconds"] = float(got["fit_seconds"])
            row["throughput"] = throughput(got["samples"], row["fit_seconds"])
        rows.append(row)
    return rows


def run_ratings(python: Path, run_dir: Path, quick: bool, recommenders_reason: str
                ) -> tuple[list[dict], list[dict], int]:
    from tfrec_fashion.evaluation.ratings import RatingEvaluation

    ours = []
    table, pd_result = train_rating_model("Partial Dual", run_dir / "partial_dual", quick)
    pd_metrics = pd_result.metrics
    rank = int(pd_metrics["solver_rank"])
    evaluation = RatingEvaluation(pd_result.dataset, seed=table.seed, model_name="peers")
    n_train = len(evaluation.split.train)
    stop = pd_metrics.get("solver_stop_reason")
    label = (f"Partial Dual (ours, C={table.methods['Partial Dual'].model.C:g}, rank found "
             f"{rank}, {pd_metrics.get('solver_iterations')} solver iterations, relative gap "
             f"{pd_metrics.get('solver_relative_gap', float('nan')):.1e}"
             + ("" if stop is None else f", stopped: {stop}") + ")")
    ours.append({"short": "Partial Dual", "method": label,
                 "test_rmse": pd_metrics["test_rmse"], "test_mae": pd_metrics["test_mae"],
                 "val_rmse": pd_metrics.get("val_rmse"),
                 "fit_seconds": pd_metrics["fit_seconds"], "unit": "-",
                 "solver": {k: v for k, v in pd_metrics.items() if k.startswith("solver_")}})
    _, stynet_result = train_rating_model("StyNet", run_dir / "stynet", quick)
    sm = stynet_result.metrics
    stynet_dim = table.methods["StyNet"].model.embedding_dim
    ours.append({"short": "StyNet", "method": f"StyNet (ours, embedding {stynet_dim})",
                 "test_rmse": sm["test_rmse"], "test_mae": sm["test_mae"],
                 "val_rmse": sm.get("val_rmse"),
                 "fit_seconds": sm["fit_seconds"], "unit": "ratings/s",
                 "throughput": throughput(int(sm["epochs_run"]) * n_train, sm["fit_seconds"]),
                 "epochs": sm["epochs_run"]})
    defaults = rating_peers(rank, quick)
    if recommenders_reason:
        defaults.pop("rlrmc")
    peers = defaults if quick else with_grids(defaults, RATING_GRIDS)
    split_path = export_split(run_dir / "rating_split.npz", "ratings",
                              pd_result.dataset.n_users, pd_result.dataset.n_items, table.seed,
                              peers, **rating_split_arrays(evaluation.split,
                                                           evaluation.rating_range))
    print(f"\n=== rating peers (rank budget {rank}: Partial Dual's certified rank; "
          f"{n_train} training ratings)", flush=True)
    out = run_peers(python, split_path, run_dir / "rating_peers.npz")

    def metrics(got: dict) -> dict:
        return {**evaluation.rating_metrics(got["test_prediction"], evaluation.split.test,
                                            "test_"),
                **evaluation.rating_metrics(got["validation_prediction"],
                                            evaluation.split.validation, "val_")}

    rows = peer_rows(peers, out, f"k={rank}", metrics)
    if recommenders_reason:
        rows.append({"method": LABELS["rlrmc"], "peer": "rlrmc",
                     "skipped": f"pip: {recommenders_reason}. {RECOMMENDERS_NOTE}"})
    return ours, rows, rank


def report(ranking: tuple, ratings: tuple, versions: Mapping[str, str], quick: bool) -> str:
    bpr, ranking_rows, _ = ranking
    rating_ours, rating_rows, rank = ratings
    ran = shown_rows(ranking_rows, "val_auc", "max")
    rated = shown_rows(rating_rows, "val_rmse", "min")
    cornac = [row for row in ran if family(row["peer"]) == "cornac_bpr"]
    partial_dual = rating_ours[0] if rating_ours else None
    grid_lines = []
    for rows, key in ((ranking_rows, "val_auc"), (rating_rows, "val_rmse")):
        fitted = [row for row in rows if "fit_seconds" in row]
        if len(fitted) > len([row for row in fitted if "@" not in row["peer"]]):
            grid_lines.append(
                f"- {len(fitted)} peer fits in all (defaults and grids, picked on {key}) took "
                f"{sum(row['fit_seconds'] for row in fitted):.1f} s; each row's fit s is "
                "its own single fit")
    parts = [f"Peers on MovieLens-100K{' (--quick: small epoch budgets)' if quick else ''}; "
             f"peer venv: {', '.join(f'{k} {v}' for k, v in versions.items())}",
             "", "Ranking (implicit protocol: leave-one-out by time, per-user AUC):", "",
             format_table([bpr, *ran], RANKING_COLUMNS), "",
             *[f"- {line}" for line in ranking_ratios(bpr, ran)], "",
             f"Ratings (80/10/10 per customer, RMSE; peers at rank {rank}, Partial Dual's):", "",
             format_table([*rating_ours, *rated], RATING_COLUMNS), "",
             *[f"- {line}" for line in rating_ratios(rating_ours, rated)], "",
             "Hyper-parameters of the peers (library defaults but the latent dimension, and the "
             "validation best of a small grid around them):",
             *[f"- {row['method']}: {json.dumps(row['params'])}" for row in [*ran, *rated]],
             *grid_lines,
             *[f"- skipped {row['method']}: {row['skipped']}"
               for row in [*ranking_rows, *rating_rows] if "skipped" in row],
             *[f"- {row['method']}: {row['unseen_items']} items without a training interaction "
               "get zero factors and its lowest item bias" for row in ran
               if row.get("unseen_items")],
             "", "Targets (issue 22):",
             *[f"- {line}" for line in target_lines(bpr, cornac, partial_dual, rated)]]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small epoch budgets everywhere (a smoke run, not the numbers)")
    parser.add_argument("--run-dir", default="runs/peers", help="where runs and results go")
    parser.add_argument("--venv", default=None,
                        help="the peer venv (default $TFREC_FASHION_HOME/peers-venv)")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    venv = Path(args.venv) if args.venv else data_home() / "peers-venv"
    started = time.perf_counter()
    python = ensure_peer_venv(venv)
    reason = recommenders_check(python)
    if reason:
        print(f"RLRMC skipped: pip cannot add recommenders to the peer venv: {reason}",
              flush=True)
    ranking = run_ranking(python, run_dir, args.quick)
    ratings = run_ratings(python, run_dir, args.quick, reason)
    text = report(ranking, ratings, ranking[2], args.quick)
    print("\n" + text)
    print(f"\n(whole benchmark {time.perf_counter() - started:.0f} s, "
          f"{os.cpu_count()} CPU threads)")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "table.md").write_text(text + "\n")
    (run_dir / "peers.json").write_text(json.dumps(
        {"quick": args.quick, "versions": ranking[2], "ranking": [ranking[0], *ranking[1]],
         "ratings": [*ratings[0], *ratings[1]], "rank_budget": ratings[2]},
        indent=2, default=float))


if __name__ == "__main__":
    main()
