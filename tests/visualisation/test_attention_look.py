"""Complete the look's maps as a user asks for them: a tiny gap_cnn run on the planted world's
item images (trained 1 epoch), then ``tfrec-fashion visualize`` with anchor items in the
customers' place: each map is of the compatibility cos(s_anchor, s_item) over the item's image,
its score the model's own ``compatibility``, the default items the first anchor's best
complements as the look head serves them; every method gives finite maps that are not all
flat; the map over the anchor's image is the same request swapped. An attributes run (no image)
and an unknown anchor are refused in one line."""

import numpy as np
import pytest

from tfrec_fashion.cli import main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.visualisation.attention import (METHODS, attention_maps, build_score_of_image,
                                                   check_request)

WORLD = {"name": "synthetic", "seed": 0, "n_users": 40, "n_items": 90, "n_time_epochs": 1,
         "outfits_per_user": 8, "image_size": 32}
LOOK = {"name": "complete_the_look", "backbone": "gap_cnn", "hidden_dim": 16,
        "embedding_dim": 8, "similar_image_size": 32}
TRAIN = {"epochs": 1, "batch_size": 32, "learning_rate": 0.001, "optimizer": "adam",
         "monitor": "val_triplet_accuracy", "monitor_mode": "max", "verbose": 0}


def _train(run_dir, model):
    return train(from_dict(RunConfig, {"run_dir": str(run_dir), "seed": 0, "data": WORLD,
                                       "model": model, "train": TRAIN}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("look") / "run", LOOK).run_dir


@pytest.fixture(scope="module")
def loaded(run):
    _, recipe, model = load_run(run)
    return recipe, model


def _compatibility(model, anchor, items):
    return model.compatibility(np.full(len(items), anchor), np.asarray(items)).numpy()


def test_visualize_maps_each_anchors_compatibility_over_its_best_complements(
        run, loaded, tmp_path, capsys):
    recipe, model = loaded
    items = recipe.dataset.items
    anchors = [int(np.flatnonzero(items.category == c)[0]) for c in ("top", "shoes")]
    ids = [str(items.ids[a]) for a in anchors]
    assert main(["visualize", str(run), "--anchor", ids[0], "--anchor", ids[1], "--method",
                 "gradcam", "--sanity", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("attention maps (gradcam) of 2 anchor items x 6 items: ")
    stored = np.load(tmp_path / "attention_gradcam.npz")
    maps, scores = stored["maps"], stored["scores"]
    assert list(stored["user_ids"]) == ids  # the columns are the anchors
    assert maps.shape == (2, 6, 32, 32) and np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.reshape(12, -1).std(axis=1).any()
    # Default items: the first anchor's 6 best complements (bottoms, shoes) by style cosine.
    style = model.item_style_embeddings().numpy()
    cosine = style @ style[anchors[0]]
    cosine[~np.isin(items.category, ["bottom", "shoes"])] = -np.inf
    rows = {item_id: row for row, item_id in enumerate(items.ids)}
    mapped = [rows[i] for i in stored["item_ids"]]
    np.testing.assert_allclose(cosine[mapped], np.sort(cosine)[::-1][:6], rtol=1e-5)
    for c, anchor in enumerate(anchors):  # the model's own compatibility of each pair
        np.testing.assert_allclose(scores[c], _compatibility(model, anchor, mapped), atol=1e-5)
    assert (tmp_path / "attention_gradcam.png").stat().st_size > 10_000
    assert printed[-1].startswith("sanity (gradcam, 6 items)")


def test_every_method_gives_finite_maps_and_the_anchors_side_is_the_request_swapped(
        run, loaded):
    recipe, model = loaded
    ids = recipe.dataset.items.ids
    request = check_request(run, [str(ids[0]), str(ids[1])], [str(i) for i in ids[10:13]])
    score = build_score_of_image(request.image_path, recipe, model, request.users,
                                 request.items)
    images = score.item_images[request.items]
    assert score.cam_layer == "conv3"  # GapCNN's last block, 8 x 8 at 32 px
    for method in METHODS:
        maps = attention_maps(score, images, method)
        assert maps.shape == (2, 3, 32, 32), method
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0, method
        assert maps.reshape(6, -1).std(axis=1).any(), method  # not every map flat
    # cos(s_a, s_c) is symmetric: item 10 as the anchor, scored over item 0's image.
    swapped = build_score_of_image(request.image_path, recipe, model, [10], [0])
    np.testing.assert_allclose(swapped.scores(swapped.item_images[[0]])[0, 0],
                               score.scores(images)[0, 0], atol=1e-5)


def test_an_attributes_run_and_an_unknown_anchor_are_refused_in_one_line(
        run, tmp_path, capsys, monkeypatch):
    attributes = _train(tmp_path / "attributes", {**LOOK, "backbone": "attributes"})
    monkeypatch.setattr("tfrec_fashion.training.harness.load_run", None)  # refused before it
    assert main(["visualize", str(attributes.run_dir), "--anchor", "i000", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backbone 'attributes'" in err and "gap_cnn or " \
        "efficientnet" in err
    assert main(["visualize", str(run), "--anchor", "no-such-item", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown anchor item id 'no-such-item'" in err


def test_an_efficientnet_run_maps_its_frozen_features_on_the_64_pixel_images(tmp_path):
    """The content is EfficientNet-Lite0's frozen pooled features at 64 px: the image goes
    through EfficientNet-Lite0 again for the maps, to the model's own compatibility."""
    run = _train(tmp_path / "efficientnet", {**LOOK, "backbone": "efficientnet"}).run_dir
    _, recipe, model = load_run(run)
    ids = recipe.dataset.items.ids
    request = check_request(run, [str(ids[0])], method="gradcam")
    score = build_score_of_image(request.image_path, recipe, model, request.users,
                                 request.items)
    images = score.item_images[request.items]
    assert images.shape == (6, 64, 64, 3) and score.input_scale == 255.0
    maps = attention_maps(score, images, "gradcam")
    assert maps.shape == (1, 6, 64, 64) and maps.reshape(6, -1).std(axis=1).any()
    np.testing.assert_allclose(score.scores(images)[0],
                               _compatibility(model, 0, request.items), atol=1e-5)
