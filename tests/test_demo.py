"""The end-to-end demo on a tiny config: train, evaluate, export, serve over gRPC, query with
the official stubs, plots; the served top-10 must be the Keras model's, and the approximate
export's must overlap it."""

import dataclasses
import json

import numpy as np
import yaml

from tfrec_fashion.demo import _planted_answers, run_demo, top_k_matches

TINY_WORLD = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120,
              "mean_interactions_per_user": 12.0, "image_size": 32}
# PAN's runs need each customer's outfits (5 or more: one held out for test, one for validation).
OUTFIT_WORLD = {**TINY_WORLD, "n_time_epochs": 1, "outfits_per_user": 10,
                "outfit_compatibility_weight": 3.0}
TRAIN = {"epochs": 2, "batch_size": 64, "steps_per_epoch": 8, "learning_rate": 0.02,
         "verbose": 0}


def test_tiny_demo_trains_exports_serves_and_draws(tmp_path, capsys):
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
        "pairs_tiny": {"seed": 0, "data": TINY_WORLD, "train": {**TRAIN, "steps_per_epoch": None},
                       "model": {"name": "pair_compatibility", "embedding_dim": 4}},
        # PSA-Net on the embeddings of the demo's Partial Dual run, named as in demo.yaml.
        "psa_net_tiny": {"seed": 0, "data": TINY_WORLD, "train": {**TRAIN, "steps_per_epoch": None},
                         "model": {"name": "psa_net", "customer_embeddings": "partial_dual_tiny",
                                   "representation_dim": 4}},
        # PAN and FHN (PAN without its user-aware attention, user loss and hard negatives).
        "pan_tiny": {"seed": 0, "data": OUTFIT_WORLD, "train": {**TRAIN, "steps_per_epoch": None},
                     "model": {"name": "pan", "code_bits": 8, "embedding_dim": 8,
                               "backbone": "gap_cnn"}},
        "fhn_tiny": {"seed": 0, "data": OUTFIT_WORLD, "train": {**TRAIN, "steps_per_epoch": None},
                     "model": {"name": "pan", "code_bits": 8, "embedding_dim": 8,
                               "user_aware_attention": False, "lambda_user": 0.0,
                               "hard_negative_ratio": 0.0}},
        # Complete the look on the items' images: the look head and its grid.
        "ctl_tiny": {"seed": 0, "data": OUTFIT_WORLD, "train": {**TRAIN, "steps_per_epoch": None,
                                                                "monitor": "val_triplet_accuracy",
                                                                "monitor_mode": "max"},
                     "model": {"name": "complete_the_look", "backbone": "gap_cnn",
                               "hidden_dim": 16, "embedding_dim": 8, "similar_image_size": 32}},
        # The design GAN beside the demo's DVBPR run (named as in demo.yaml), designing through
        # the generation head; small_cnn's 64 px Phi makes the designs go through Delta.
        "gan_tiny": {"seed": 0, "data": TINY_WORLD,
                        "train": {**TRAIN, "batch_size": 16, "steps_per_epoch": 3,
                                  "learning_rate": 0.0002, "monitor": "val_frechet_phi",
                                  "monitor_mode": "min"},
                        "model": {"name": "design_gan", "dvbpr_run": "dvbpr_tiny", "latent_dim": 8,
                                  "generator_filters": 4, "discriminator_filters": 4,
                                  "design_restarts": 8, "design_steps": 3, "trials": 4,
                                  "eta_trials": 2}},
    }}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    results = run_demo(tmp_path / "work", config_path=path)
    assert {name: r["served_matches_keras"] for name, r in results.items()} == {
        "bpr_mf_tiny": True, "dvbpr_tiny": True, "partial_dual_tiny": True, "stynet_tiny": True,
        "pairs_tiny": True, "psa_net_tiny": True, "pan_tiny": True, "fhn_tiny": True,
        "ctl_tiny": True, "gan_tiny": True}
    # What the demo prints says the same: one check per run, none False.
    out = capsys.readouterr().out
    printed = [line for line in out.splitlines() if line.lstrip().startswith("served top-10 == ")]
    assert len(printed) == 9 and all(line.endswith(": True") for line in printed), printed
    assert "Pending stages" not in out  # the GAN's designs were the last
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
    # The pair model is served through the compatibility head.
    info = json.loads((work / "exports" / "pairs_tiny" / "1" / "assets.extra" /
                       "tfrec_fashion.json").read_text())
    assert info["head"] == "compatibility" and "complete_pair" in info["signatures"]
    assert summary["pairs_tiny"]["protocol"] == "pairs"
    assert summary["psa_net_tiny"]["protocol"] == "pairs"
    assert np.isfinite(summary["psa_net_tiny"]["test_auc"])  # too few votes per customer here
    psa = yaml.safe_load((work / "psa_net_tiny" / "config.yaml").read_text())["model"]
    assert psa["customer_embeddings"] == str(work / "partial_dual_tiny")  # the demo's own run
    # PAN and FHN: the outfit protocol's FITB and AUC beside the oracle and random in the
    # summary, served through the outfit head.
    for name in ("pan_tiny", "fhn_tiny"):
        assert summary[name]["protocol"] == "outfits"
        assert summary[name]["oracle_test_fitb"] > summary[name]["random_test_fitb"] + 0.2
        assert 0.0 <= summary[name]["test_fitb"] <= 1.0 and 0.0 <= summary[name]["test_auc"] <= 1.0
        info = json.loads((work / "exports" / name / "1" / "assets.extra" /
                           "tfrec_fashion.json").read_text())
        assert info["head"] == "outfit" and {"score_outfit", "fill_in_the_blank"} <= set(
            info["signatures"])
        # Also served by Hamming ranking, checked against the exact export.
        assert (work / "exports" / f"{name}_hamming" / "1" / "saved_model.pb").is_file()
        assert 0.5 < summary[name]["served_hamming_recall_at_10"] <= 1.0
    # PAN on images gets its own spatial attention (Fig. 3) beside the GradCAM maps.
    assert (work / "pan_tiny" / "attention" / "pan_spatial_attention.png").stat().st_size > 10_000
    assert summary["pan_tiny"]["attention_sanity"].startswith("sanity (gradcam")
    pan_row = next(line for line in (work / "summary.md").read_text().splitlines()
                   if line.startswith("| pan_tiny |"))
    assert f"{summary['pan_tiny']['test_fitb']:.4f}" in pan_row
    assert f"{summary['pan_tiny']['oracle_test_fitb']:.4f}" in pan_row
    # Complete the look: the protocol's numbers in the summary, served through the look head
    # (checked above against the model's own cosines), a grid per query product, and maps of
    # three anchor items' compatibility.
    assert summary["ctl_tiny"]["protocol"] == "complete_the_look"
    ctl_row = next(line for line in (work / "summary.md").read_text().splitlines()
                   if line.startswith("| ctl_tiny |"))
    assert f"{summary['ctl_tiny']['test_triplet_accuracy']:.4f}" in ctl_row
    assert f"{summary['ctl_tiny']['similar_precision_at_10']:.4f}" in ctl_row
    info = json.loads((work / "exports" / "ctl_tiny" / "1" / "assets.extra" /
                       "tfrec_fashion.json").read_text())
    assert info["head"] == "look" and {"similar", "complementary"} <= set(info["signatures"])
    assert (work / "complete_the_look.png").stat().st_size > 20_000
    ctl_maps = np.load(work / "ctl_tiny" / "attention" / "attention_gradcam.npz")
    assert ctl_maps["maps"].shape == (3, 6, 32, 32) and ctl_maps["maps"].max() > 0
    assert summary["ctl_tiny"]["attention_sanity"].startswith("sanity (gradcam, 6 items)")
    # The image run gets attention maps of three customers, with the sanity line, before export
    # (so the browse page gets them); the report gathers the workdir in one file.
    maps = np.load(work / "dvbpr_tiny" / "attention" / "attention_gradcam.npz")
    assert maps["maps"].shape[:2] == (3, 6) and maps["maps"][0].max() > 0  # not a flat map
    assert summary["dvbpr_tiny"]["attention_sanity"].startswith("sanity (gradcam, 6 items)")
    assert "attention_sanity" not in summary["bpr_mf_tiny"]
    extra = work / "exports" / "dvbpr_tiny" / "1" / "assets.extra"  # what the browse page reads
    assert (extra / "thumbnails.png").is_file() and (extra / "attention" / "gradcam.json").is_file()
    # The design GAN: Table IV's numbers in the summary, designs served for the customer surest
    # of an item (an unknown one flagged cold) and drawn beside their history and retrieval
    # picks, and maps of three customers' preference over those designs.
    assert summary["gan_tiny"]["protocol"] == "design"
    design_row = next(line for line in (work / "summary.md").read_text().splitlines()
                      if line.startswith("| gan_tiny |"))
    assert f"{summary['gan_tiny']['synthesis_preference_mean']:.4f}" in design_row
    assert summary["gan_tiny"]["served_design_cold_start_flagged"] is True
    assert (work / "designs.png").stat().st_size > 10_000
    design_maps = np.load(work / "gan_tiny" / "attention" / "design_attention_gradcam.npz")
    assert design_maps["maps"].shape[:2] == (3, 6)
    assert summary["gan_tiny"]["attention_sanity"].startswith("sanity (gradcam, 6 items)")
    design = yaml.safe_load((work / "gan_tiny" / "config.yaml").read_text())["model"]
    assert design["dvbpr_run"] == str(work / "dvbpr_tiny")
    # A new customer (a persona of the planted world: its survey answers and 10 votes) served
    # through StyNet's recommend_new_customer (preferred to Partial Dual's votes-only fold-in),
    # drawn beside the mean customer's top-10, its line under the summary table.
    newcomer = summary["stynet_tiny"]
    assert "newcomer" not in summary["partial_dual_tiny"]
    assert (work / "newcomer.png").stat().st_size > 20_000
    assert newcomer["newcomer_cold_start_flags"] is True  # only the unknown id is a cold start
    assert newcomer["newcomer_differs_from_mean"] is True
    line = newcomer["newcomer"]
    assert line.startswith("newcomer (stynet_tiny, favourite_colour=")
    assert " and 10 votes): " in line
    assert f"{newcomer['newcomer_in_taste_at_10']} of the served top-10 in their planted" in line
    assert f"the mean customer's {newcomer['mean_customer_in_taste_at_10']} " in line
    assert line in (work / "summary.md").read_text() and line in out
    report = (work / "report.html").read_text()
    assert "dvbpr_tiny" in report and "data:image/png;base64," in report
    assert "Complete the look, served" in report  # the grid, with its caption


def test_planted_answers_are_the_honest_survey_answers():
    """The newcomer's persona is a pair of true survey answers: with an honest survey they are
    exactly what every customer answered."""
    from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world

    world = make_world(SyntheticWorldConfig.tiny(survey_accuracy=1.0))
    answers = _planted_answers(world)
    assert set(answers) == set(world.users.features) == {"favourite_colour", "cares_most_about"}
    for question, answer in answers.items():
        np.testing.assert_array_equal(answer, world.users.features[question])
    noisy = make_world(SyntheticWorldConfig.tiny(survey_accuracy=0.0))  # uniform guesses
    assert (_planted_answers(noisy)["favourite_colour"]
            != noisy.users.features["favourite_colour"]).mean() > 0.5
    assert _planted_answers(dataclasses.replace(world, truth={})) is None  # no planted truth


SCORES = np.array([3.0, 2.0, 2.0 * (1 + 1e-7), 1.0, 0.5, -np.inf])  # item 5: already bought


def test_top_k_matches_accepts_the_exact_order_and_reorders_within_float_ties():
    assert top_k_matches([0, 2, 1, 3], SCORES, k=4)           # the exact order
    assert top_k_matches([0, 1, 2, 3], SCORES, k=4)  # 1 and 2 tie to float32 precision
    # A tie across rank k: either tied item may fill the last place, nothing else.
    assert top_k_matches([0, 1], SCORES, k=2) and top_k_matches([0, 2], SCORES, k=2)
    assert not top_k_matches([0, 3], SCORES, k=2)
    # rtol=0: only exact ties may reorder.
    assert not top_k_matches([0, 1, 2], SCORES, k=3, rtol=0.0)
    assert top_k_matches([0, 1, 2], np.array([3.0, 2.0, 2.0, 1.0]), k=3, rtol=0.0)


def test_top_k_matches_rejects_a_real_reorder_and_wrong_items():
    assert not top_k_matches([0, 3, 2, 1], SCORES, k=4)       # 1.0 served above 2.0
    assert not top_k_matches([0, 2, 1, 4], SCORES, k=4)       # 0.5 instead of 1.0
    close = np.array([3.0, 2.0, 2.0 * (1 + 1e-3), 1.0])       # near, but not a float tie
    assert not top_k_matches([0, 1, 2], close, k=3)
    assert not top_k_matches([0, 5, 2], SCORES, k=3)          # a bought item
    assert not top_k_matches([0, 0, 2], SCORES, k=3)          # a repeat
    assert not top_k_matches([0, 2, -1], SCORES, k=3)         # an unknown id
    assert not top_k_matches([0, 2], SCORES, k=3)             # too few
    # Fewer candidates than k: all of them, in order.
    assert top_k_matches([0, 1], np.array([1.0, 0.0, -np.inf]), k=10)
