"""``tfrec-fashion visualize`` on a design_gan run: the first customer's designs, each customer's
DVBPR preference mapped over them, the scores the maps are of, and the refusals."""

import numpy as np
import pytest

from tests.training.test_design_gan_recipe import dvbpr_run  # noqa: F401  (the fixture)
from tests.training.test_design_gan_recipe import gan_config
from tfrec_fashion.cli import main
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.visualisation.attention import AttentionError
from tfrec_fashion.visualisation.design_attention import write_design_maps


@pytest.fixture(scope="module")
def gan_run(dvbpr_run, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("design") / "gan"
    train(gan_config(run_dir, dvbpr_run))
    return run_dir


def test_maps_are_of_each_customers_preference_over_the_first_ones_designs(gan_run, tmp_path,
                                                                           capsys):
    assert main(["visualize", str(gan_run), "--user", "u00", "--user", "u05", "--category",
                 "shoes", "--n", "3", "--method", "gradcam", "--out", str(tmp_path),
                 "--sanity"]) == 0
    printed = capsys.readouterr().out
    assert "designs for u00 in 'shoes'" in printed and "sanity (gradcam, 3 items)" in printed
    png = tmp_path / "design_attention_gradcam.png"
    assert png.is_file() and png.stat().st_size > 5000
    with np.load(tmp_path / "design_attention_gradcam.npz") as arrays:
        maps, scores, images = arrays["maps"], arrays["scores"], arrays["images"]
        assert list(arrays["user_ids"]) == ["u00", "u05"] and str(arrays["category"]) == "shoes"
        objective = arrays["objective"]
    assert maps.shape == (2, 3, 32, 32) and scores.shape == (2, 3) and objective.shape == (3,)
    assert np.all((maps >= 0) & (maps <= 1)) and images.min() >= 0 and images.max() <= 1
    # The scores are DVBPR's theta_u . Phi of the mapped images, the designs' preference.
    _, recipe, model = load_run(gan_run)
    users = [list(recipe.dataset.users.ids).index(u) for u in ("u00", "u05")]
    expected = recipe.user_vectors[users] @ recipe.dvbpr.embed_items(images).numpy().T
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    # The designs are the run's own: the same seed designs them again.
    designs, again = recipe.designer(model).design(users[0], recipe.categories.index("shoes"),
                                                   3, recipe.model_config.design_eta, 0)
    np.testing.assert_allclose(designs, images, atol=1e-5)
    np.testing.assert_allclose(again, objective, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "sanity_design_gradcam.json").is_file()


def test_the_default_category_is_that_of_the_customers_best_catalogue_item(gan_run, tmp_path):
    _, category = write_design_maps(gan_run, ["u01"], tmp_path, "saliency", n=2)
    _, recipe, _ = load_run(gan_run)
    best = int(np.argmax(recipe.item_vectors @ recipe.user_vectors[1]))
    assert category == recipe.categories[recipe.item_category[best]]


@pytest.mark.parametrize("users, options, message", [
    (["nobody"], {}, "unknown customer id 'nobody'"),
    (["u00"], {"category": "hats"}, "unknown category 'hats'; this GAN designs bottom, shoes, top"),
    (["u00"], {"n": 0}, r"designs to draw must be in \[1, 4\]"),
    ([], {}, "name at least one customer"),
])
def test_bad_requests_are_refused_by_name(gan_run, tmp_path, users, options, message):
    with pytest.raises(AttentionError, match=message):
        write_design_maps(gan_run, users, tmp_path, "gradcam", **options)


def test_items_are_refused_for_a_design_run(gan_run, tmp_path, capsys):
    assert main(["visualize", str(gan_run), "--user", "u00", "--items", "x",
                 "--out", str(tmp_path)]) != 0
    assert "maps its own designs" in capsys.readouterr().err
