"""The pointing game: peak and top-share hits on hand-made maps, ties, empty masks, chance level."""

import math

import numpy as np
import pytest

from tfrec_fashion.metrics import pointing_game, pointing_game_values


def _one_hot_map(shape, row, col, value=1.0):
    maps = np.zeros(shape)
    maps[row, col] = value
    return maps


def _corner_mask(size=4):
    mask = np.zeros((size, size), bool)
    mask[:2, :2] = True  # 4 of 16 pixels: area 0.25
    return mask


def reference_values(map_, mask, top_fraction):
    """Pixel by pixel: peak over the tied maxima; top set filled in value order, ties pro rata."""
    flat, inside = map_.ravel().tolist(), mask.ravel().tolist()
    best = max(flat)
    tied = [i for i, v in enumerate(flat) if v == best]
    peak = sum(inside[i] for i in tied) / len(tied)
    k = max(1, math.ceil(round(top_fraction * len(flat), 9)))
    taken, hits = 0.0, 0.0
    for value in sorted(set(flat), reverse=True):
        group = [i for i, v in enumerate(flat) if v == value]
        take = min(len(group), k - taken)
        hits += take * sum(inside[i] for i in group) / len(group)
        taken += take
        if taken >= k:
            break
    return peak, hits / k, sum(inside) / len(inside)


def test_peak_inside_and_outside_hand_computed():
    maps = np.stack([_one_hot_map((4, 4), 0, 1), _one_hot_map((4, 4), 3, 3)])
    masks = np.stack([_corner_mask(), _corner_mask()])
    result = pointing_game(maps, masks)
    assert result["peak"] == 0.5  # first peak inside the corner, second outside
    assert result["chance"] == 0.25
    assert result["n_items"] == 2 and result["n_empty_masks"] == 0
    # k = ceil(1.6) = 2: the peak and one of the 15 pixels tied at 0 (3 of them inside the corner
    # for the first map, 4 for the second).
    assert result["top_share"] == pytest.approx(((1 + 3 / 15) / 2 + (0 + 4 / 15) / 2) / 2)


def test_tied_peaks_count_as_the_expected_share():
    map_ = np.zeros((4, 4))
    map_[0, 0] = map_[0, 1] = map_[3, 3] = 2.0  # two of the three tied maxima inside
    values = pointing_game_values(map_[None], _corner_mask()[None])
    assert values["peak"][0] == pytest.approx(2 / 3)
    # k = 2 of the 3 tied top pixels, taken pro rata: 2 x 2/3 inside out of 2.
    assert values["top_share"][0] == pytest.approx(2 / 3)


def test_constant_and_random_maps_score_chance():
    constant = pointing_game(np.ones((3, 4, 4)), np.stack([_corner_mask()] * 3))
    assert constant["peak"] == constant["top_share"] == constant["chance"] == 0.25
    rng = np.random.default_rng(0)
    masks = rng.random((4000, 8, 8)) < 0.3
    result = pointing_game(rng.random((4000, 8, 8)), masks)
    assert result["chance"] == pytest.approx(masks.mean(), abs=1e-3)
    assert abs(result["peak"] - result["chance"]) < 0.03
    assert abs(result["top_share"] - result["chance"]) < 0.02


def test_a_map_that_points_at_the_mask_beats_chance():
    masks = np.stack([_corner_mask(10)] * 2)  # 4 of 100 pixels
    maps = np.stack([masks[0] * 5.0 + 0.1, masks[1] * 5.0 + 0.1])
    result = pointing_game(maps, masks, top_fraction=0.04)
    assert result["peak"] == 1.0 and result["top_share"] == 1.0 and result["chance"] == 0.04
    # A larger top set than the mask: the 4 inside, then 6 of the 96 tied at 0.1 pro rata.
    assert pointing_game(maps, masks)["top_share"] == pytest.approx(0.4)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("top_fraction", [0.1, 0.25, 1.0])
def test_values_match_pixel_by_pixel_reference(seed, top_fraction):
    rng = np.random.default_rng(seed)
    maps = rng.integers(0, 4, size=(30, 5, 6)).astype(float)  # many ties
    masks = rng.random((30, 5, 6)) < 0.4
    values = pointing_game_values(maps, masks, top_fraction)
    for i in range(30):
        expected = reference_values(maps[i], masks[i], top_fraction)
        got = (values["peak"][i], values["top_share"][i], values["chance"][i])
        assert got == pytest.approx(expected)


def test_top_set_size_is_not_inflated_by_float_fuzz():
    # 0.1 x 30 pixels is 3.0000000000000004 in floats: the top set holds 3 pixels, not 4.
    map_ = np.arange(30.0).reshape(1, 5, 6)
    mask = np.zeros((1, 5, 6), bool)
    mask[0, 4, 3:] = True  # the 3 largest values
    assert pointing_game(map_, mask)["top_share"] == 1.0


def test_empty_masks_are_skipped_and_counted():
    maps = np.stack([_one_hot_map((4, 4), 0, 0), _one_hot_map((4, 4), 3, 3)])
    masks = np.stack([_corner_mask(), np.zeros((4, 4), bool)])
    values = pointing_game_values(maps, masks)
    assert np.isnan(values["peak"][1]) and np.isnan(values["chance"][1])
    result = pointing_game(maps, masks.astype(int))  # 0/1 masks are accepted
    assert result == {"peak": 1.0, "top_share": pytest.approx((1 + 3 / 15) / 2),
                      "chance": 0.25, "n_items": 1, "n_empty_masks": 1}
    with pytest.warns(RuntimeWarning, match="every mask is empty"):
        nothing = pointing_game(maps, np.zeros((2, 4, 4), bool))
    assert math.isnan(nothing["peak"]) and nothing["n_items"] == 0 and nothing["n_empty_masks"] == 2


@pytest.mark.parametrize(("maps", "masks", "kwargs", "message"), [
    (np.zeros((2, 4)), np.zeros((2, 4), bool), {}, r"`maps` must be 3-D .*shape=\(2, 4\)"),
    (np.full((1, 2, 2), np.nan), np.ones((1, 2, 2), bool), {}, "must not contain NaN"),
    (np.full((1, 2, 2), np.inf), np.ones((1, 2, 2), bool), {}, "must be finite"),
    (-np.ones((1, 2, 2)), np.ones((1, 2, 2), bool), {}, "non-negative.*min=-1"),
    (np.ones((1, 2, 2)), np.ones((1, 2, 3), bool), {}, "same shape.*masks.shape=\\(1, 2, 3\\)"),
    (np.ones((1, 2, 2)), np.full((1, 2, 2), 2), {}, "bool or hold only 0 and 1"),
    (np.ones((1, 2, 2)), np.ones((1, 2, 2), bool), {"top_fraction": 0}, "top_fraction=0"),
    (np.ones((1, 2, 2)), np.ones((1, 2, 2), bool), {"top_fraction": 1.5}, r"\(0, 1\]"),
    (np.ones((1, 0, 2)), np.ones((1, 0, 2), bool), {}, "at least one pixel"),
])
def test_bad_input_names_the_argument(maps, masks, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pointing_game(maps, masks, **kwargs)
