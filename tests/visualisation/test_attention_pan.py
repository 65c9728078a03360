"""PAN's attention as a user asks for it: a tiny PAN on the planted world's item images (backbone
gap_cnn, trained end to end), then its own spatial attention figure (Fig. 3: the surest user of
each planted subspace over the same items) and ``tfrec-fashion visualize``: each map is of the
outfit score with respect to one item's image, completed into the customer's first held-out
outfit; the map's score is the model's own score of that outfit, every method gives finite
maps, and the Fig. 3 figure is written beside them. A PAN on attributes (1 x 1 maps) is refused
in one line, and so are items of two slots."""

import numpy as np
import pytest

from tfrec_fashion.cli import main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.visualisation.attention import (METHODS, AttentionError, attention_maps,
                                                   build_score_of_image, check_request)
from tfrec_fashion.visualisation.pan_attention import (pan_attention_figure,
                                                       users_whose_tastes_differ)

SEED = 5
WORLD = {"name": "synthetic", "seed": SEED, "n_users": 40, "n_items": 90, "n_time_epochs": 1,
         "outfits_per_user": 8, "image_size": 32}
TRAIN = {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "verbose": 0,
         "monitor": "val_auc", "monitor_mode": "max"}
PAN = {"name": "pan", "backbone": "gap_cnn", "code_bits": 16, "embedding_dim": 16}


def _train(run_dir, model, epochs=TRAIN["epochs"]):
    return train(from_dict(RunConfig, {"run_dir": str(run_dir), "seed": SEED, "data": WORLD,
                                       "model": model, "train": {**TRAIN, "epochs": epochs}}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("pan") / "run", PAN).run_dir


@pytest.fixture(scope="module")
def loaded(run):
    _, recipe, model = load_run(run)
    return recipe, model


def _own_scores(recipe, model, user, items, partners):
    """The model's score of each item completed with its partners (the other slots, in order)."""
    slot = int(model.item_slots[items[0]])
    outfits = np.insert(np.asarray(partners), slot, items, axis=1).astype(np.int32)
    return model({"user": np.full(len(items), user, np.int32), "outfit": outfits}).numpy()


def test_fig3_draws_each_planted_taste_over_the_same_items(loaded, tmp_path):
    recipe, model = loaded
    users = users_whose_tastes_differ(recipe.dataset, n=3)
    dominant = recipe.dataset.truth["user_subspace_weights"][users].argmax(axis=1)
    assert len(users) == 3 and len(set(dominant)) == 3  # colour, pattern, length
    items = recipe.evaluation.split.test.items[0].tolist() + [3, 4, 5]  # top, bottom, shoes, ...
    maps = pan_attention_figure(recipe, model, users, items, tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").stat().st_size > 20_000
    assert maps.shape == (3, len(items), 8, 8)  # GapCNN's relu3 map at 32 px
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    np.testing.assert_allclose(maps[1, 2], model.spatial_attention([users[1]], [items[2]])[0],
                               rtol=1e-6)
    for first, second in ((0, 1), (0, 2), (1, 2)):  # S reads the user (W_su u, eq. 3)
        assert np.abs(maps[first] - maps[second]).max() > 1e-3


def test_visualize_maps_the_outfit_score_and_draws_fig3_beside(run, loaded, tmp_path, capsys):
    recipe, model = loaded
    users = users_whose_tastes_differ(recipe.dataset, n=2)
    ids = [str(recipe.dataset.users.ids[u]) for u in users]
    assert main(["visualize", str(run), "--user", ids[0], "--user", ids[1], "--method",
                 "gradcam", "--sanity", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    stored = np.load(tmp_path / "attention_gradcam.npz")
    maps, scores = stored["maps"], stored["scores"]
    assert list(stored["user_ids"]) == ids
    assert maps.shape == (2, 6, 32, 32) and np.isfinite(maps).all()
    # GradCAM keeps only positive evidence (ReLU): an image that only lowers its outfit's score
    # gets a blank map, so blank maps are allowed but not all of them.
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.reshape(12, -1).std(axis=1).any()
    # Default items: the first 6 tops, each completed into the customer's first test outfit.
    items = recipe.dataset.items
    rows = {item_id: row for row, item_id in enumerate(items.ids)}
    mapped = [rows[i] for i in stored["item_ids"]]
    assert mapped == list(np.flatnonzero(items.category == "top")[:6])
    test = recipe.evaluation.split.test
    for c, user in enumerate(users):
        partners = np.vectorize(rows.get)(stored["partner_ids"][c])  # [6, 2]
        outfit = test.items[np.flatnonzero(test.user == user)[0]]
        assert (partners == outfit[1:]).all()
        np.testing.assert_allclose(scores[c], _own_scores(recipe, model, user, mapped, partners),
                                   rtol=1e-5, atol=1e-6)
    assert (tmp_path / "attention_gradcam.png").stat().st_size > 10_000
    spatial = np.load(tmp_path / "pan_spatial_attention.npz")
    assert spatial["spatial_attention"].shape == (2, len(spatial["item_ids"]), 8, 8)
    assert (tmp_path / "pan_spatial_attention.png").stat().st_size > 10_000
    assert f"PAN's spatial attention of the same customers: {tmp_path}/pan_spatial_attention.png" \
        in printed
    assert printed[-1].startswith("sanity (gradcam, 6 items)")


def test_every_method_gives_finite_maps_of_the_models_own_outfit_score(run, loaded):
    recipe, model = loaded
    users = users_whose_tastes_differ(recipe.dataset, n=2)
    bottoms = [str(i) for i in recipe.dataset.items.ids[recipe.dataset.items.category == "bottom"]]
    request = check_request(run, [str(recipe.dataset.users.ids[u]) for u in users], bottoms[:3])
    score = build_score_of_image(request.image_path, recipe, model, request.users,
                                 request.items)
    images = score.item_images[request.items]
    for method in METHODS:
        maps = attention_maps(score, images, method)
        assert maps.shape == (2, 3, 32, 32), method
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0, method
    partners = score.partners(images)
    own = [_own_scores(recipe, model, user, request.items, partners[c])
           for c, user in enumerate(users)]
    np.testing.assert_allclose(score.scores(images), own, rtol=1e-5, atol=1e-6)


def test_an_attributes_run_and_items_of_two_slots_are_refused_in_one_line(
        run, loaded, tmp_path, capsys, monkeypatch):
    attributes = _train(tmp_path / "attributes", {**PAN, "backbone": "attributes"}, epochs=1)
    _, attributes_recipe, attributes_model = load_run(attributes.run_dir)
    with pytest.raises(AttentionError, match="backbone 'attributes' has 1 x 1 feature maps"):
        pan_attention_figure(attributes_recipe, attributes_model, [0], [0], tmp_path / "x.png")
    monkeypatch.setattr("tfrec_fashion.training.harness.load_run", None)  # refused before it
    assert main(["visualize", str(attributes.run_dir), "--user", "u00", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backbone 'attributes'" in err and "gap_cnn or " \
        "efficientnet" in err
    recipe, _ = loaded
    items = recipe.dataset.items
    mixed = [items.ids[np.flatnonzero(items.category == c)[0]] for c in ("top", "shoes")]
    assert main(["visualize", str(run), "--user", "u00", "--items", *mixed, "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one slot at a time" in err and "top, shoes" in err


def test_an_efficientnet_run_maps_its_frozen_p4_on_the_64_pixel_images(tmp_path, capsys):
    """The content is EfficientNet-Lite0's frozen P4 maps (4 x 4 at 64 px): the images shown
    are the ones they were computed from, and the image goes through the trunk again for the
    maps, to the model's own outfit score."""
    run = _train(tmp_path / "efficientnet", {**PAN, "backbone": "efficientnet"},
                 epochs=1).run_dir
    _, recipe, model = load_run(run)
    users = users_whose_tastes_differ(recipe.dataset, n=2)
    maps = pan_attention_figure(recipe, model, users, [3, 4], tmp_path / "fig3.png")
    assert maps.shape == (2, 2, 4, 4) and maps.min() >= 0.0 and maps.max() <= 1.0
    ids = [str(recipe.dataset.users.ids[u]) for u in users]
    assert main(["visualize", str(run), "--user", ids[0], "--user", ids[1], "--method",
                 "gradcam", "--out", str(tmp_path / "maps")]) == 0
    stored = np.load(tmp_path / "maps" / "attention_gradcam.npz")
    assert stored["maps"].shape == (2, 6, 64, 64) and stored["images"].shape == (6, 64, 64, 3)
    rows = {item_id: row for row, item_id in enumerate(recipe.dataset.items.ids)}
    mapped = [rows[i] for i in stored["item_ids"]]
    for c, user in enumerate(users):
        partners = np.vectorize(rows.get)(stored["partner_ids"][c])
        np.testing.assert_allclose(stored["scores"][c],
                                   _own_scores(recipe, model, user, mapped, partners),
                                   rtol=1e-5, atol=1e-5)
