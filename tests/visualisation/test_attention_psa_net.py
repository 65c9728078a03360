"""Attention maps of PSA-Net as a user asks for them: Partial Dual on a tiny planted world, then
PSA-Net with a small CNN on the item images (the paper's two stages), then ``tfrec-fashion
visualize``: each map is of the pair score (the item's image beside its best partner for that
customer, the customer's attention weights fixed) with respect to the item's image; the map's
score is the model's own score of that pair, every method gives finite maps, two customers whose
planted dominant subspaces differ are mapped side by side with their learned weights printed,
and the sanity checks run. A PSA-Net run on item features has no image to map: refused in one
line, and so are items of two categories."""

import json

import numpy as np
import pytest

from tfrec_fashion.cli import main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.visualisation.attention import (METHODS, attention_maps,
                                                   build_score_of_image, check_request)

SEED = 5
WORLD = {"name": "synthetic", "seed": SEED, "n_users": 60, "n_items": 80, "n_time_epochs": 2,
         "ratings_per_user": 30, "pair_ratings_per_user": 30, "image_size": 16}
TRAIN = {"epochs": 3, "batch_size": 128, "learning_rate": 0.01, "verbose": 0}
PSA_NET = {"name": "psa_net", "backbone": "gap_cnn", "image_size": 16, "representation_dim": 8}


def _train(run_dir, model, epochs=TRAIN["epochs"]):
    return train(from_dict(RunConfig, {"run_dir": str(run_dir), "seed": SEED, "data": WORLD,
                                       "model": model, "train": {**TRAIN, "epochs": epochs}}))


@pytest.fixture(scope="module")
def partial_dual(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("pd") / "run",
                  {"name": "partial_dual", "C": 5.0, "max_iterations": 100,
                   "centering": "global"}).run_dir


@pytest.fixture(scope="module")
def run(partial_dual, tmp_path_factory):
    return _train(tmp_path_factory.mktemp("psa") / "run",
                  {**PSA_NET, "customer_embeddings": str(partial_dual)}).run_dir


@pytest.fixture(scope="module")
def loaded(run):
    _, recipe, model = load_run(run)
    return recipe, model


def _planted_apart(recipe) -> list[int]:
    """Two customers whose planted dominant subspaces differ: the surest of subspace a, then
    the surest of another subspace."""
    planted = recipe.dataset.truth["user_subspace_weights"]
    first = int(np.argmax(planted.max(axis=1)))
    others = np.flatnonzero(planted.argmax(axis=1) != planted[first].argmax())
    return [first, int(others[np.argmax(planted[others].max(axis=1))])]


def test_visualize_maps_the_pair_score_of_two_customers_with_their_weights(run, loaded,
                                                                           tmp_path, capsys):
    recipe, model = loaded
    users = _planted_apart(recipe)
    ids = [str(recipe.dataset.users.ids[u]) for u in users]
    planted = recipe.dataset.truth["user_subspace_weights"][users]
    assert planted.argmax(axis=1)[0] != planted.argmax(axis=1)[1]
    assert main(["visualize", str(run), "--user", ids[0], "--user", ids[1], "--method",
                 "gradcam", "--sanity", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    stored = np.load(tmp_path / "attention_gradcam.npz")
    assert list(stored["user_ids"]) == ids
    maps, scores, partners = stored["maps"], stored["scores"], stored["partner_ids"]
    assert maps.shape == (2, 6, 16, 16) and np.isfinite(maps).all()
    # Default items: the first 6 bottoms (the first category by name); each paired with a top,
    # its best for that customer.
    items = recipe.dataset.items
    rows = {item_id: row for row, item_id in enumerate(items.ids)}
    mapped = [rows[i] for i in stored["item_ids"]]
    assert list(mapped) == list(np.flatnonzero(items.category == "bottom")[:6])
    partner_rows = np.vectorize(rows.get)(partners)
    assert (items.category[partner_rows] == "top").all()
    for c, user in enumerate(users):
        own = recipe.pair_scores(model, np.full(6, user), np.array(mapped), partner_rows[c])
        np.testing.assert_allclose(scores[c], own, rtol=1e-5, atol=1e-6)
        tops = np.flatnonzero(items.category == "top")
        every = recipe.pair_scores(model, np.full(len(tops), user), np.full(len(tops), mapped[0]),
                                   tops)
        assert own[0] == pytest.approx(every.max(), rel=1e-5)  # the best partner
    # The customers' learned attention weights, beside the maps and printed.
    weights = model.attention_weights(np.array(users, np.int32)).numpy()
    np.testing.assert_allclose(stored["attention_weights"], weights, rtol=1e-6)
    for user_id, row in zip(ids, weights):
        line = f"    {user_id}: attention weights over the subspaces (" + ", ".join(
            f"{w:.2f}" for w in row) + ")"
        assert line in printed
    assert (tmp_path / "attention_gradcam.png").stat().st_size > 10_000
    checks = json.loads((tmp_path / "sanity_gradcam.json").read_text())
    assert printed[-1] == checks["line"] and checks["line"].startswith("sanity (gradcam, 6 items)")
    assert np.isfinite(checks["parameter_randomisation"]["mean_abs_rho"])
    assert np.isfinite(checks["customer_randomisation"]["gap"])


def test_every_method_gives_finite_maps_of_the_models_own_pair_score(run, loaded):
    recipe, model = loaded
    users = _planted_apart(recipe)
    request = check_request(run, [str(recipe.dataset.users.ids[u]) for u in users])
    score = build_score_of_image(request.image_path, recipe, model, request.users,
                                 request.items)
    images = score.item_images[request.items[:4]]
    for method in METHODS:
        maps = attention_maps(score, images, method)
        assert maps.shape == (2, 4, 16, 16), method
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0, method
    partners = score.partners(images)
    own = [recipe.pair_scores(model, np.full(4, u), np.array(request.items[:4]), partners[c])
           for c, u in enumerate(users)]
    np.testing.assert_allclose(score.scores(images), own, rtol=1e-5, atol=1e-6)


def test_a_features_run_and_items_of_two_categories_are_refused_in_one_line(
        run, partial_dual, loaded, tmp_path, capsys, monkeypatch):
    features = _train(tmp_path / "features",
                      {**PSA_NET, "backbone": "features", "feature_source": "attributes",
                       "customer_embeddings": str(partial_dual)}, epochs=1).run_dir
    monkeypatch.setattr("tfrec_fashion.training.harness.load_run", None)
    assert main(["visualize", str(features), "--user", "u00", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model 'psa_net' has no image path to map attention" in err
    recipe, _ = loaded
    items = recipe.dataset.items
    mixed = [items.ids[np.flatnonzero(items.category == c)[0]] for c in ("top", "bottom")]
    assert main(["visualize", str(run), "--user", "u00", "--items", *mixed, "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one category at a time" in err and "top, bottom" in err


def test_the_variant_that_is_not_personalised_maps_one_score_for_everyone(tmp_path, capsys):
    """Everyone's weights are the same (softmax(theta)): the same maps and scores for every
    customer, and the customer check has no customers to tell apart (FAILED, not a crash)."""
    run = _train(tmp_path / "global", {**PSA_NET, "personalised": False}, epochs=1).run_dir
    assert main(["visualize", str(run), "--user", "u00", "--user", "u01", "--method", "gradcam",
                 "--sanity", "--out", str(tmp_path / "maps")]) == 0
    stored = np.load(tmp_path / "maps" / "attention_gradcam.npz")
    np.testing.assert_array_equal(stored["maps"][0], stored["maps"][1])
    np.testing.assert_array_equal(stored["attention_weights"][0], stored["attention_weights"][1])
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("FAILED)")
