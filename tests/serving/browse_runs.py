"""Trained, exported runs for the browse page's tests (``test_ui.py``, ``test_ui_browser.py``):
a tiny DVBPR on the planted world (item images, so a thumbnail sheet) with GradCAM and GradCAM++
maps of two customers written by ``tfrec-fashion visualize``, and a tiny pair-compatibility model. Each
trains in a few seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

from tfrec_fashion.cli import main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export.runs import export_run

WORLD = {"name": "synthetic", "seed": 0, "n_users": 40, "n_items": 60, "n_time_epochs": 3,
         "mean_interactions_per_user": 10.0, "image_size": 32}
DVBPR = {"name": "dvbpr", "backbone": "small_cnn", "embedding_dim": 8}
MAPPED_USERS = ["u00", "u07"]  # the customers `visualize` maps
METHODS = ["gradcam", "gradcam++"]  # written as attention_gradcam, attention_gradcampp
PAIRS_WORLD = {**WORLD, "n_time_epochs": 1, "image_size": 16, "pair_ratings_per_user": 20}
PAIRS = {"name": "pair_compatibility", "feature_source": "attributes", "embedding_dim": 8}


def _train(root: Path, model: dict, world: dict, train_config: dict):
    config = from_dict(RunConfig, {"model": model, "data": world, "seed": 0,
                                   "train": {"verbose": 0, **train_config},
                                   "run_dir": str(root / "run")})
    return train(config)


def dvbpr_export(root: Path, base: Path):
    """DVBPR with attention maps, trained in ``root`` and exported into ``base`` as "dvbpr";
    returns its TrainResult."""
    result = _train(root, DVBPR, WORLD, {"epochs": 8, "batch_size": 64, "steps_per_epoch": 8,
                                         "learning_rate": 0.02})
    users = [argument for user in MAPPED_USERS for argument in ("--user", user)]
    for method in METHODS:
        assert main(["visualize", str(result.run_dir), *users, "--method", method]) == 0
    export_run(result.run_dir, base, "dvbpr")
    return result


def pairs_export(root: Path, base: Path):
    """The pair-compatibility model, trained in ``root`` and exported into ``base`` as
    "pairs"; returns its TrainResult."""
    result = _train(root, PAIRS, PAIRS_WORLD, {"epochs": 2, "batch_size": 128,
                                               "learning_rate": 0.01})
    export_run(result.run_dir, base, "pairs")
    return result
