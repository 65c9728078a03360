"""Plots are real PNG files a person can open, and bad input is refused with a message."""

import numpy as np
import pytest
from PIL import Image

from tfrec_fashion.visualisation.item_grid import plot_item_grid
from tfrec_fashion.visualisation.look_grid import plot_look_grid
from tfrec_fashion.visualisation.training_curves import plot_training_curves


def test_item_grid_is_a_png_with_one_cell_per_item(tmp_path):
    images = np.zeros((10, 16, 16, 3), np.uint8)
    images[:, 4:12, 4:12] = [200, 30, 30]
    path = plot_item_grid(images, [f"red top {i}" for i in range(10)], tmp_path / "g" / "grid.png",
                          columns=5, title="items")
    with Image.open(path) as png:
        assert png.format == "PNG"
        width, height = png.size
    assert width > height  # 5 columns x 2 rows
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert (np.abs(pixels.astype(int) - [200, 30, 30]).sum(axis=-1) < 40).any(), "items drawn"


def test_item_grid_needs_one_caption_per_image(tmp_path):
    with pytest.raises(ValueError, match="one caption per image. Received: 2 images, 1 captions"):
        plot_item_grid(np.zeros((2, 4, 4, 3), np.uint8), ["x"], tmp_path / "g.png")


def test_look_grid_draws_a_row_per_query_with_its_similar_and_complementary_items(tmp_path):
    queries = np.zeros((2, 16, 16, 3), np.uint8)
    similar = np.zeros((2, 3, 16, 16, 3), np.uint8)
    complementary = np.zeros((2, 3, 16, 16, 3), np.uint8)
    complementary[:, :, 4:12, 4:12] = [30, 30, 200]  # the complements drawn in blue
    captions = [["top 0.91"] * 3] * 2
    path = plot_look_grid(queries, ["i0 (top)", "i1 (shoes)"], similar, captions, complementary,
                          captions, tmp_path / "look.png", title="complete the look")
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape[1] > 2 * pixels.shape[0]  # 7 images (and 2 gaps) by 2 rows
    assert (np.abs(pixels.astype(int) - [30, 30, 200]).sum(axis=-1) < 40).any()
    with pytest.raises(ValueError, match="one caption per query. Received: 2 queries, 1 captions"):
        plot_look_grid(queries, ["i0"], similar, captions, complementary, captions,
                       tmp_path / "x.png")


def test_training_curves_draw_losses_metrics_and_reference_lines(tmp_path):
    history = {"epoch": [0, 1, 2], "loss": [3.0, 2.0, 1.5], "total_loss": [3.1, 2.1, 1.6],
               "val_auc": [0.6, 0.7, float("nan")]}
    path = plot_training_curves(history, tmp_path / "curves.png", title="run",
                                reference={"oracle": 0.9})
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 500


def test_feature_trends_draw_the_features_that_moved_most(tmp_path):
    from tfrec_fashion.visualisation.feature_trends import plot_feature_trends

    values = np.zeros((4, 5))
    values[:, 1] = [0.0, 0.5, 1.0, 2.0]  # rising
    values[:, 3] = [1.0, 0.5, 0.0, -1.0]  # falling
    names = [f"colour=c{k}" for k in range(5)]
    path = plot_feature_trends(values, names, tmp_path / "trends.png", top=2, title="trends")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 500
    with pytest.raises(ValueError, match="at least 2 time epochs"):
        plot_feature_trends(values[:1], names, tmp_path / "x.png")
    with pytest.raises(ValueError, match="F = len\\(feature_names\\) = 4"):
        plot_feature_trends(values, names[:4], tmp_path / "x.png")


def test_solver_convergence_draws_the_certificate_and_the_rank(tmp_path):
    from tfrec_fashion.visualisation.solver_convergence import plot_solver_convergence

    history = {"iteration": [0, 1, 2, 3], "relative_gap": [0.2, 0.05, 1e-4, 1e-8],
               "grad_norm": [10.0, 1.0, 0.1, 1e-6], "rank": [1, 1, 2, 2], "cost": [4, 3, 2, 2]}
    path = plot_solver_convergence(history, tmp_path / "c.png", "partial dual", 1e-6)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > png.size[1]
    with pytest.raises(ValueError, match=r"lacks \['rank'\]"):
        plot_solver_convergence({"relative_gap": [1.0], "grad_norm": [1.0]}, tmp_path / "x.png")
