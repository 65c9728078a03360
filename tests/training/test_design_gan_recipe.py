"""The design GAN through the training harness, end to end on a tiny planted world: a DVBPR run,
then the conditional LSGAN beside it (``model.dvbpr_run``), its per-epoch monitor, the design
protocol's numbers, its generation serving parts and its reload; a DVBPR run of another dataset
is refused, naming both."""

import json

import numpy as np
import pytest

from tfrec_fashion.config import from_dict
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.training.serving_parts import GenerationParts, load_parts

WORLD = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120,
         "mean_interactions_per_user": 12.0, "image_size": 32}
DVBPR = {"name": "dvbpr", "backbone": "gap_cnn", "embedding_dim": 8, "lambda_theta": 0.001}
GAN = {"name": "design_gan", "latent_dim": 8, "generator_filters": 4,
       "discriminator_filters": 4, "design_restarts": 4, "design_steps": 3, "trials": 4,
       "eta_trials": 2}
GAN_TRAIN = {"epochs": 2, "batch_size": 16, "steps_per_epoch": 3, "learning_rate": 0.0002,
             "monitor": "val_frechet_phi", "monitor_mode": "min", "early_stopping_patience": 0,
             "verbose": 0}


@pytest.fixture(scope="module")
def dvbpr_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dvbpr")
    train(from_dict(RunConfig, {
        "data": WORLD, "model": DVBPR, "run_dir": str(run_dir),
        "train": {"epochs": 1, "batch_size": 32, "steps_per_epoch": 4, "learning_rate": 0.01,
                  "verbose": 0}}))
    return run_dir


def gan_config(run_dir, dvbpr_run, data=WORLD) -> RunConfig:
    return from_dict(RunConfig, {"data": data, "model": {**GAN, "dvbpr_run": str(dvbpr_run)},
                                 "train": GAN_TRAIN, "run_dir": str(run_dir)})


def test_the_gan_trains_beside_its_dvbpr_run_and_is_evaluated_and_served(dvbpr_run, tmp_path):
    result = train(gan_config(tmp_path / "gan", dvbpr_run))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["protocol"] == "design" and metrics["epochs_run"] == 2
    # The monitor is logged each epoch and picks the best one.
    history = result.history
    assert len(history["val_frechet_phi"]) == 2 and len(history["val_d_gap"]) == 2
    assert metrics["best_val_frechet_phi"] == min(history["val_frechet_phi"])
    # The best epoch's weights are the final model: its distance is the best epoch's.
    assert metrics["val_frechet_phi"] == pytest.approx(metrics["best_val_frechet_phi"], rel=1e-4)
    # The design protocol's rows, every one answered (Table IV's synthesis beside the others).
    for source in ("random_real", "random_generated", "retrieval", "synthesis"):
        for measure in ("preference", "quality", "diversity"):
            assert np.isfinite(metrics[f"{source}_{measure}_mean"]), (source, measure)
    # Retrieval is delta(u, c), the best catalogue items by the same preference score.
    assert metrics["retrieval_preference_mean"] >= metrics["random_real_preference_mean"]

    parts = load_parts(result.run_dir)
    assert isinstance(parts, GenerationParts)
    assert parts.categories == ["bottom", "shoes", "top"]
    assert parts.gan.latent_dim == 8 and parts.image_shape == [32, 32, 3]
    assert parts.settings.restarts == 4 and parts.settings.steps == 3
    assert len(parts.user_ids) == 60 and parts.item_images.shape == (120, 32, 32, 3)

    # The run reloads as it was trained, and its served generator is the trained one.
    _, recipe, model = load_run(result.run_dir)
    z, category = model.sample_latent(4, seed=0), np.array([0, 1, 2, 0], np.int32)
    expected = result.model.generate(z, category).numpy()
    np.testing.assert_allclose(model.generate(z, category).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(parts.gan.generate(z, category).numpy(), expected, atol=1e-6)
    assert recipe.categories == parts.categories


def test_a_dvbpr_run_of_another_dataset_is_refused_naming_both(dvbpr_run, tmp_path):
    other = {**WORLD, "seed": 1}
    with pytest.raises(ConfigError, match=r"was trained on dataset 'synthetic_60x120_seed0' "
                                          r"\(60 users, 120 items\), this run's data is dataset "
                                          r"'synthetic_60x120_seed1'"):
        train(gan_config(tmp_path / "gan", dvbpr_run, data=other))
    assert not (tmp_path / "gan").exists()  # refused before the run directory is written


def test_a_dvbpr_run_of_the_same_items_and_customers_with_other_tastes_is_refused(dvbpr_run,
                                                                                  tmp_path):
    # Same seed, so the same name and ids; another taste setting, so other interactions: the
    # DVBPR run's theta_u would describe other customers.
    other = {**WORLD, "visual_weight": 0.3}
    with pytest.raises(ConfigError, match="was trained on dataset 'synthetic_60x120_seed0'"):
        train(gan_config(tmp_path / "gan", dvbpr_run, data=other))


def test_a_missing_dvbpr_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="model.dvbpr_run: name the directory"):
        train(from_dict(RunConfig, {"data": WORLD, "model": GAN, "train": GAN_TRAIN,
                                    "run_dir": str(tmp_path / "gan")}))
    with pytest.raises(ConfigError, match="is no run directory"):
        train(gan_config(tmp_path / "gan", tmp_path / "nowhere"))
