"""The end-to-end demo on a tiny config: train, evaluate, export, serve over gRPC, query with
the official stubs, plots; the served top-10 must be the Keras model's, and the approximate
export's must overlap it."""

import json

import yaml

from tfrec_fashion.demo import run_demo

TINY_WORLD = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120,
              "mean_interactions_per_user": 12.0, "image_size": 32}
TRAIN = {"epochs": 2, "batch_size": 64, "steps_per_epoch": 8, "learning_rate": 0.02,
         "verbose": 0}


def test_tiny_demo_trains_exports_serves_and_draws(tmp_path):
    config = {"runs": {
        "bpr_mf_tiny": {"seed": 0, "data": TINY_WORLD, "train": TRAIN,
                        "model": {"name": "bpr_mf", "latent_dim": 8}},
        "dvbpr_tiny": {"seed": 0, "data": TINY_WORLD, "train": TRAIN,
                       "model": {"name": "dvbpr", "backbone": "small_cnn", "embedding_dim": 8}},
        "partial_dual_tiny": {"seed": 0, "data": TINY_WORLD, "train": {"verbose": 0},
                              "model": {"name": "partial_dual", "C": 5.0, "centering": "global"}},
        "stynet_tiny": {"seed": 0, "data": TINY_WORLD,
                        "train": {**TRAIN, "monitor": "val_auc", "steps_per_epoch": None},
                        "model": {"name": "stynet", "embedding_dim": 8, "hidden_units": 16}},
    }}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    results = run_demo(tmp_path / "work", config_path=path)
    assert {name: r["served_matches_keras"] for name, r in results.items()} == {
        "bpr_mf_tiny": True, "dvbpr_tiny": True, "partial_dual_tiny": True, "stynet_tiny": True}
    work = tmp_path / "work"
    assert (work / "exports" / "models.config").is_file()
    assert (work / "exports" / "dvbpr_tiny" / "1" / "saved_model.pb").is_file()
    # The first run is also served from the approximate index (a quarter of it probed).
    assert (work / "exports" / "bpr_mf_tiny_partitioned" / "1" / "saved_model.pb").is_file()
    assert 0.3 < results["bpr_mf_tiny"]["served_partitioned_recall_at_10"] <= 1.0
    assert (work / "recommendations.png").stat().st_size > 10_000
    assert "served_matches_keras" in (work / "summary.md").read_text()
    summary = json.loads((work / "summary.json").read_text())
    assert summary["dvbpr_tiny"]["test_auc"] > 0
    assert summary["partial_dual_tiny"]["test_rmse"] > 0  # the rating runs report RMSE
    assert (work / "partial_dual_tiny" / "embeddings.npz").is_file()
