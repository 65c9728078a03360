"""The design protocol (paper 003, Table IV and Fig. 3): the measures against closed forms (inception
score of uniform and one-hot probabilities, Frechet distance of identical and shifted Gaussians,
SSIM of constant images), the planted true score against the world's own truth on its catalogue,
the project classifier learning and its cache, the evaluation on fake designers of NumPy
callables (no GAN: a "designer" returning the best real items scores exactly like retrieval),
and the table's markdown, JSON and eta plot. On ``FashionMnistWorld.tiny(image_size=32)`` with a
classifier fitted on 6,000 Fashion-MNIST images for 2 epochs (the full one: the slow test)."""

import json
import time

import numpy as np
import pytest
from tests.conftest import load_real_data

from tfrec_fashion.data.fashion_mnist_world import FashionMnistWorld
from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.design import SOURCES, Designer, DesignEvaluation
from tfrec_fashion.evaluation.design_quality import (
    ClassifierSettings, diversity, frechet_distance, image_classifier, inception_score,
    inception_score_splits, mean_pairwise_ssim, planted_visual_score, to_grey_28,
    visual_code_of_images)
from tfrec_fashion.evaluation.design_table import PAPER_TABLE_IV, DesignTable
from tfrec_fashion.evaluation.protocols import get_protocol, protocol_of

SMALL = ClassifierSettings(epochs=2, train_size=6000, test_size=2000)
SSIM_C1 = 0.01 ** 2  # tf.image.ssim's (k1 * max_val)^2


@pytest.fixture(scope="module")
def world():
    return load_real_data(FashionMnistWorld.tiny(seed=0, image_size=32).build)


@pytest.fixture(scope="module")
def classifier(world, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFREC_FASHION_HOME", str(home))
        started = time.time()
        fitted = image_classifier(world, SMALL)
        fit_seconds = time.time() - started
        started = time.time()
        cached = image_classifier(world, SMALL)
        load_seconds = time.time() - started
    fitted.cache_check = (cached, fit_seconds, load_seconds, home)
    return fitted


def images_of(world, rows):
    return np.asarray(world.items.images, np.float32)[rows] / 255.0


# ---------------------------------------------------------------------------- measures
def test_inception_score_of_uniform_and_one_hot_probabilities():
    assert inception_score(np.full((20, 10), 0.1)) == pytest.approx(1.0)
    # Each image confidently one class, the classes evenly used: exp(log 10) = 10.
    assert inception_score(np.eye(10)[np.arange(40) % 10]) == pytest.approx(10.0)
    assert inception_score(np.eye(10)[np.zeros(40, int)]) == pytest.approx(1.0)  # one class
    # Two classes, p(y|x) = (0.9, 0.1) or (0.1, 0.9) half each: exp(KL((.9, .1) || (.5, .5))).
    p = np.array([[0.9, 0.1], [0.1, 0.9]] * 5)
    assert inception_score(p) == pytest.approx(np.exp(0.9 * np.log(1.8) + 0.1 * np.log(0.2)))
    mean, std = inception_score_splits(np.eye(10)[np.arange(100) % 10], splits=10)
    assert (mean, std) == (pytest.approx(10.0), pytest.approx(0.0))


def test_frechet_distance_of_identical_and_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Fewer points than dimensions (singular covariances): still the closed form, no warning.
    few = rng.normal(size=(5, 8))
    assert frechet_distance(few, few + 1.0) == pytest.approx(8.0, rel=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # Independent axes scaled by s: the covariance term is sum (sigma_a - sigma_b)^2.
    scale = np.array([1.0, 2.0, 3.0, 0.5])
    covariance = np.cov(a, rowvar=False)
    expected = np.trace(covariance + np.diag(scale) @ covariance @ np.diag(scale)
                        - 2 * np.diag(np.sqrt(scale)) @ covariance @ np.diag(np.sqrt(scale)))
    assert frechet_distance(a, a * scale) == pytest.approx(
        ((a.mean(0) * (1 - scale)) ** 2).sum() + expected, rel=1e-4)
    with pytest.raises(ValueError, match=r"Received: shapes \(500, 4\) and \(3, 2\)"):
        frechet_distance(a, a[:3, :2])


def test_diversity_is_one_minus_ssim_of_constant_images_in_closed_form():
    # Constant images a and b: SSIM = (2ab + C1) / (a^2 + b^2 + C1) (no contrast, no structure).
    grey = lambda v: np.full((32, 32, 3), v, np.float32)  # noqa: E731
    images = np.stack([grey(0.2), grey(0.8), grey(0.5)])
    pairs = [(0.2, 0.8), (0.2, 0.5), (0.8, 0.5)]
    expected = np.mean([(2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1) for a, b in pairs])
    # float32 variances of constant windows are ~1e-7, not 0, beside C2 = 9e-4: 1e-3 apart.
    assert diversity(images) == pytest.approx(1 - expected, abs=1e-3)
    noise = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    assert diversity(np.stack([noise[0]] * 3)) == pytest.approx(0.0, abs=1e-6)
    assert diversity(noise) > 0.9  # independent noise: SSIM near 0
    assert mean_pairwise_ssim(np.stack([images, images[::-1]])) == pytest.approx(
        [expected, expected], abs=1e-3)


# ---------------------------------------------------------------------------- classifier
def test_the_classifier_learns_fashion_mnist_and_is_cached(classifier):
    cached, fit_seconds, load_seconds, home = classifier.cache_check
    # 6,000 training images, 2 epochs: ~0.8 on 2,000 real test images (chance 0.1).
    assert classifier.test_accuracy > 0.7
    assert cached.test_accuracy == classifier.test_accuracy
    assert load_seconds < fit_seconds
    assert len(list((home / "cache" / "classifiers").glob("fashion_mnist-*"))) == 1
    probe = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(cached.probabilities(probe), classifier.probabilities(probe),
                               rtol=1e-5, atol=1e-6)
    assert classifier.features(probe).shape == (4, SMALL.feature_dim)


@pytest.mark.slow
def test_the_full_classifier_reaches_90_percent_on_the_real_test_split(world):
    # The project's classifier as the design protocol uses it (cached in the data home).
    assert image_classifier(world).test_accuracy >= 0.90


def test_on_another_dataset_the_classifier_learns_its_item_categories(tmp_path, monkeypatch):
    monkeypatch.setenv("TFREC_FASHION_HOME", str(tmp_path))
    synthetic = make_world(SyntheticWorldConfig.tiny(seed=0))
    classifier = image_classifier(synthetic, ClassifierSettings(epochs=15, batch_size=32))
    assert classifier.class_names == tuple(sorted(set(synthetic.items.category)))
    # 40 held-out rendered items of 3 categories (chance ~0.4 for the commonest).
    assert classifier.test_accuracy > 0.8
    assert list((tmp_path / "cache" / "classifiers").glob("items-*"))
    with pytest.raises(DataError, match="the planted visual taste is the Fashion-MNIST world's; "
                                        "dataset 'synthetic[^']*' has no"):
        planted_visual_score(synthetic, np.zeros(2, int), np.zeros((2, 32, 32, 3)), classifier)


def test_planted_visual_score_reproduces_the_truth_on_the_catalogue(world, classifier):
    rows = np.arange(world.n_items)
    images = images_of(world, rows)
    code = visual_code_of_images(world, images, classifier)
    truth = world.truth["visual_code"].astype(np.float64)
    right = code[:, :10].argmax(1) == truth[:, :10].argmax(1)
    assert right.mean() > 0.7  # the small classifier's accuracy
    # The attributes measured again after 28 -> 32 -> 28 resampling: nearly the world's own.
    for column in range(10, 14):
        assert np.corrcoef(code[:, column], truth[:, column])[0, 1] > 0.9, column
    users = np.random.default_rng(0).integers(0, world.n_users, len(rows))
    scores = planted_visual_score(world, users, images, classifier)
    expected = np.einsum("nd,nd->n", world.truth["visual_taste"][users], truth)
    assert np.corrcoef(scores[right], expected[right])[0, 1] > 0.95
    # The world's own grey pixels give its attributes exactly.
    grey = to_grey_28(np.repeat(np.asarray(world.items.images)[:5, ..., :1], 3, -1)
                      .astype(np.float32) / 255.0)
    assert grey.shape == (5, 28, 28) and grey.dtype == np.uint8


# ---------------------------------------------------------------------------- evaluation
def oracle_designer(world, classifier):
    """A fake designer on the planted truth: theta = the visual taste, Phi = the visual code,
    "generation" = a real item of the category picked by z, "design" = the best real items."""
    categories = sorted(set(np.asarray(world.items.category)))
    category = np.asarray(world.items.category)
    members = [np.flatnonzero(category == name) for name in categories]
    theta = world.truth["visual_taste"].astype(np.float64)
    phi = world.truth["visual_code"].astype(np.float64)

    def generate(z, c):
        return np.stack([images_of(world, members[k][int((z0 + 1) / 2 * (len(members[k]) - 1))])
                         for z0, k in zip(z[:, 0], c)])

    def design(user, c, n, eta, seed):
        scores = phi[members[c]] @ theta[user]
        best = members[c][np.argsort(-scores, kind="stable")[:n]]
        return images_of(world, best), scores[np.argsort(-scores, kind="stable")[:n]]

    return Designer(categories=categories, user_vectors=theta, item_vectors=phi,
                    generate=generate,
                    preference=lambda x, u: planted_visual_score(world, u, x, classifier),
                    design=design, latent_dim=4)


@pytest.fixture(scope="module")
def oracle_metrics(world, classifier):
    evaluation = DesignEvaluation(world, seed=0, trials=40, eta_trials=10, classifier=classifier)
    return evaluation.evaluate(oracle_designer(world, classifier))


def test_trials_query_each_customers_last_category_the_gan_knows(world, classifier):
    evaluation = DesignEvaluation(world, seed=0, trials=50, classifier=classifier)
    trials = evaluation.draw_trials(["bottom", "shoes", "top"])
    assert len(set(trials.user.tolist())) == 50  # without replacement
    interactions = world.interactions
    for user, c in zip(trials.user, trials.category):
        mine = interactions.user == user
        last = interactions.item[mine][np.argmax(interactions.timestamp[mine])]
        assert ["bottom", "shoes", "top"][c] == world.items.category[last]
    again = evaluation.draw_trials(["bottom", "shoes", "top"])
    np.testing.assert_array_equal(trials.user, again.user)  # drawn once per seed
    with pytest.raises(DataError, match=r"no customer's query category is one design_gan "
                                        r"knows \(\['hat'\]\)"):
        evaluation.draw_trials(["hat"])


def test_a_designer_returning_the_best_real_items_scores_exactly_like_retrieval(oracle_metrics):
    m = oracle_metrics
    for measure in ("preference", "quality", "diversity", "true_score"):
        for stat in ("mean", "std"):
            key = f"{measure}_{stat}"
            assert m[f"synthesis_{key}"] == pytest.approx(m[f"retrieval_{key}"]), key
    assert m["synthesis_frechet"] == pytest.approx(m["retrieval_frechet"])
    assert m["synthesis_beats_retrieval_true"] == 0.0  # ties never count as beating
    # Retrieval by the true taste beats random items under it, by far and in most queries.
    # (The visual taste's std over customers and items is sqrt(visual_weight) = 0.77.)
    assert m["retrieval_true_score_mean"] > m["random_real_true_score_mean"] + 0.7
    assert m["synthesis_beats_random_real_true"] > 0.8
    assert m["synthesis_beats_random_generated_true"] > 0.8
    # Preference here is the planted score itself.
    assert m["retrieval_preference_mean"] == pytest.approx(m["retrieval_true_score_mean"])
    # Random real items are the catalogue: closer to it than the top picks of each customer.
    assert m["random_real_frechet"] < m["retrieval_frechet"]
    assert 1.0 <= m["random_real_quality_mean"] <= 10.0
    assert 0.0 < m["random_real_diversity_mean"] < 1.0
    assert m["design_trials"] == 40.0 and m["classifier_test_accuracy"] > 0.7


def test_the_eta_sweep_reruns_the_design_at_each_eta(oracle_metrics):
    m = oracle_metrics
    for eta in ("0", "0.1", "1", "10"):
        assert f"eta_{eta}_preference_mean" in m and f"eta_{eta}_true_score_std" in m
    # The oracle ignores eta: every eta scores as retrieval on the same first 10 queries.
    assert m["eta_10_preference_mean"] == pytest.approx(m["eta_sweep_retrieval_preference_mean"])
    assert m["eta_1_diversity_mean"] == pytest.approx(m["eta_sweep_retrieval_diversity_mean"])


def test_a_designer_that_fools_its_own_score_is_caught_by_the_planted_truth(world, classifier):
    # Its preference calls everything it designs wonderful; the designs are the customer's
    # WORST items, so the planted truth ranks synthesis below random real items.
    honest = oracle_designer(world, classifier)
    theta, phi = honest.user_vectors, honest.item_vectors
    category = np.asarray(world.items.category)

    def worst(user, c, n, eta, seed):
        members = np.flatnonzero(category == honest.categories[c])
        rows = members[np.argsort(phi[members] @ theta[user])[:n]]
        return images_of(world, rows), np.zeros(n)

    fooled = Designer(**{**honest.__dict__, "design": worst,
                         "preference": lambda x, u: np.full(len(x), 100.0)})
    m = DesignEvaluation(world, seed=1, trials=30, etas=(1.0,), eta_trials=5,
                         classifier=classifier).evaluate(fooled)
    assert m["synthesis_preference_mean"] > m["retrieval_preference_mean"] - 1e-9
    assert m["synthesis_true_score_mean"] < m["random_real_true_score_mean"] - 0.5
    assert m["synthesis_beats_random_real_true"] < 0.2


def test_bad_settings_and_short_designs_are_refused(world, classifier):
    with pytest.raises(ValueError, match="top_k=1"):
        DesignEvaluation(world, top_k=1)
    honest = oracle_designer(world, classifier)
    short = Designer(**{**honest.__dict__, "design": lambda u, c, n, eta, seed:
                        honest.design(u, c, n - 1, eta, seed)})
    with pytest.raises(ValueError, match="design_gan's design returned 2 images; the protocol "
                                         "asked for top_k=3"):
        DesignEvaluation(world, trials=2, classifier=classifier).evaluate(short)


# ---------------------------------------------------------------------------- table
def test_the_table_has_table_iv_beside_the_paper_and_writes_the_eta_plot(oracle_metrics,
                                                                       tmp_path):
    runs = {"LSGAN": {**oracle_metrics, "protocol": "design"}}
    table = protocol_of(runs["LSGAN"]).table("Fashion-MNIST world", runs, proposed="LSGAN",
                                             reference="")
    assert isinstance(table, DesignTable)
    markdown = table.format_markdown()
    m = oracle_metrics
    row = next(line for line in markdown.splitlines() if line.startswith("| Synthesis"))
    assert (f"{m['synthesis_preference_mean']:.3f} ± {m['synthesis_preference_std']:.2f}"
            in row)
    assert "7.6760 ± 4.10" in row  # the paper's synthesis preference beside ours
    assert f"{m['synthesis_true_score_mean']:.3f}" in row
    assert "| 10 |" in markdown and "| retrieval delta(u, c) |" in markdown
    assert "Classifier test accuracy" in markdown
    markdown_path, json_path = table.write(tmp_path)
    assert markdown_path.read_text().strip() == markdown.strip()
    data = json.loads(json_path.read_text())
    run = data["runs"]["LSGAN"]
    assert run["rows"]["retrieval"]["true_score"]["mean"] == pytest.approx(
        m["retrieval_true_score_mean"])
    assert set(run["rows"]) == set(SOURCES)
    assert run["eta_sweep"]["0.1"]["quality"]["mean"] == pytest.approx(m["eta_0.1_quality_mean"])
    assert data["paper"]["retrieval"]["quality"] == {"mean": 7.6492, "std": 0.27}
    assert PAPER_TABLE_IV["synthesis"]["diversity"] == (0.5265, 0.12)
    png = tmp_path / "eta_sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert get_protocol("design").evaluation_class() is DesignEvaluation
    with pytest.raises(ValueError, match="missing"):
        DesignTable.from_runs("w", {"x": {"test_auc": 0.5}})
