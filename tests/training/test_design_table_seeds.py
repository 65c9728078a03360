"""Table IV's honest check over 3 fresh seeds: on a Fashion-MNIST world, DVBPR and then the
conditional LSGAN beside it are trained through the harness, and the design protocol scores the
synthesised images with each customer's *planted* visual taste (class from the project's
classifier, attributes measured on the pixels), which the generator cannot fool the way it can
fool DVBPR's Phi. Synthesis must beat random real items and random generated items under that
truth, by a margin, on every seed.

The settings were fixed on seed 0 (a tiny world: 400 items, 500 customers, visual weight 1;
DVBPR small_cnn; a GAN of 1,000 steps; 16 restarts of 30 ascent steps; 40 queries) and the
margins checked on seeds 1-3. Measured on 2 shared cores (planted true score, mean over the
queries' top-3 images):

    seed                          0 (fixed on)   1      2      3
    random real X_c                  0.252      0.338  0.449  0.695
    random generated G(., c)         0.307      0.340  0.481  0.548
    retrieval delta(u, c)            1.011      0.963  0.933  1.764
    synthesis delta-hat(u, c)        0.921      0.982  0.868  1.464   asserted: > both random
                                                                      rows + 0.2
    synthesis beats random real,
      share of queries               0.75       0.68   0.70   0.78    asserted: > 0.5
    DVBPR preference, synthesis
      (retrieval)                    3.38 (2.67) 0.30 (-0.05) 0.61 (0.43) 1.64 (1.26)

Synthesis does not beat retrieval under the truth (it does in 45-55% of the queries): the
designs please Phi a little more than the best real items and the customer a little less. A first
setting (300 customers with visual weight 0.9, a GAN of 500 steps of batch 32 at learning rate
2e-4) passed seed 0 by a thinner margin and failed seed 1 (synthesis 0.307 against random real
0.353: blurry designs that fooled Phi); a better GAN (1,000 steps of 64 at 5e-4) and customers
whose interactions all follow their visual taste (so DVBPR learns it) fixed it on seed 0, and
seeds 1-3 were then run once.

Each seed takes 2-3 minutes (DVBPR ~15 s, the GAN's 1,000 steps and the protocol's 64 designs
~2 min; the project's classifier is read from the data-home cache, trained there once by
whichever test needs it first, ~6 min), hence ``slow``.
"""

from __future__ import annotations

import functools

import pytest

from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

SEEDS = (1, 2, 3)
# Every interaction follows the visual taste (visual weight 1, a short popularity tail): what a
# designer can learn from images is all there is to learn.
WORLD = {"name": "fashion_mnist_world", "n_items": 400, "n_users": 500, "image_size": 32,
         "visual_weight": 1.0, "popularity_scale": 0.3}
DVBPR = {"name": "dvbpr", "backbone": "small_cnn", "embedding_dim": 32, "lambda_theta": 0.1}
DVBPR_TRAIN = {"optimizer": "adam", "learning_rate": 0.002, "batch_size": 128,
               "steps_per_epoch": 50, "epochs": 10, "early_stopping_patience": 3, "verbose": 0}
GAN = {"name": "design_gan", "latent_dim": 32, "generator_filters": 32,
       "discriminator_filters": 32, "design_restarts": 16, "design_steps": 30,
       "design_learning_rate": 0.05, "trials": 40, "eta_trials": 8}
GAN_TRAIN = {"epochs": 20, "batch_size": 64, "steps_per_epoch": 50, "learning_rate": 0.0005,
             "monitor": "val_frechet_phi", "monitor_mode": "min", "early_stopping_patience": 0,
             "verbose": 0}
MARGIN = 0.2  # planted-score units; the visual taste's std over all pairs is 1


@pytest.fixture(scope="module")
def design_metrics(tmp_path_factory):
    """``design_metrics(seed)``: the GAN run's metrics.json content (each seed trained once)."""

    @functools.cache
    def trained(seed: int) -> dict:
        world = {**WORLD, "seed": seed}
        dvbpr_dir = tmp_path_factory.mktemp(f"dvbpr{seed}")
        train(from_dict(RunConfig, {"data": world, "model": DVBPR, "train": DVBPR_TRAIN,
                                    "run_dir": str(dvbpr_dir), "seed": seed}))
        gan = train(from_dict(RunConfig, {
            "data": world, "model": {**GAN, "dvbpr_run": str(dvbpr_dir)}, "train": GAN_TRAIN,
            "run_dir": str(tmp_path_factory.mktemp(f"gan{seed}")), "seed": seed}))
        m = gan.metrics
        print(f"\nseed {seed}: " + ", ".join(
            f"{source} {m[f'{source}_true_score_mean']:.3f}" for source in
            ("random_real", "random_generated", "retrieval", "synthesis"))
            + f"; synthesis beats random real in {m['synthesis_beats_random_real_true']:.2f}")
        return m

    return trained


@pytest.mark.parametrize("seed", SEEDS)
def test_synthesis_beats_random_items_under_the_planted_truth(design_metrics, real_data, seed):
    m = real_data(design_metrics, seed)
    assert m["classifier_test_accuracy"] >= 0.90  # the true class of a design is trustworthy
    synthesis = m["synthesis_true_score_mean"]
    assert synthesis > m["random_real_true_score_mean"] + MARGIN
    assert synthesis > m["random_generated_true_score_mean"] + MARGIN
    # Per query too, not only on average.
    assert m["synthesis_beats_random_real_true"] > 0.5
    assert m["synthesis_beats_random_generated_true"] > 0.5
    # And under DVBPR's own score, which the ascent maximises, it beats retrieval's mean.
    assert m["synthesis_preference_mean"] > m["retrieval_preference_mean"]
