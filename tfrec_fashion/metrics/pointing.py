"""The pointing game: does a saliency map point at the region that really drives the score?

Zhang et al.'s pointing game ("Top-down Neural Attention by Excitation Backprop", 2016) asks
whether a map's peak falls inside the ground-truth region. On the planted world the region is
where the attribute a customer cares about is drawn (``synthetic_render.item_region_masks``),
so a map that explains the customer's score should land there more often than chance.

Two scores per map, both in [0, 1], and the chance level they are read against:

- peak: 1 if the map's maximum lies inside the mask, else 0. Ties count as the expected value
  under a random tie-break: the share of the tied maximum pixels that lie inside.
- top share: the share of the map's top ``top_fraction`` of pixels by value (k = ceil(fraction x
  H x W) pixels, at least 1) that lie inside the mask. Pixels tied at the k-th value are taken pro
  rata, so a constant map scores exactly the mask's area. It counts pixels, not their values.
- chance: the mask's area fraction, which a map with no information (uniformly random, or
  constant) scores on average under both rules.

An item whose mask is empty has no answer: it is skipped (NaN in the per-item values) and
counted in ``n_empty_masks``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from tfrec_fashion.metrics import _checks


def pointing_game_values(maps: ArrayLike, masks: ArrayLike,
                         top_fraction: float = 0.1) -> dict[str, np.ndarray]:
    """Per-item pointing-game scores.

    Args:
        maps: float [n, H, W] non-negative saliency maps (higher = more important). NaN,
            infinite or negative values rejected.
        masks: bool [n, H, W] (or 0/1) region of each item.
        top_fraction: share of the pixels in the top set, in (0, 1].

    Returns:
        {"peak", "top_share", "chance"}: float64 [n] each, NaN where the mask is empty.
    """
    maps, masks, top_fraction = _check_inputs(maps, masks, top_fraction)
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    inside = masks.reshape(n, -1)
    n_pixels = flat.shape[1]

    at_peak = flat == flat.max(axis=1, keepdims=True)
    peak = (at_peak & inside).sum(1) / at_peak.sum(1)

    # Rounded first, so float fuzz cannot add a pixel (0.1 * 30 = 3.0000000000000004).
    k = max(1, math.ceil(round(top_fraction * n_pixels, 9)))
    kth_value = -np.partition(-flat, k - 1, axis=1)[:, k - 1 : k]
    above = flat > kth_value
    tied = flat == kth_value
    tied_weight = (k - above.sum(1)) / tied.sum(1)  # pro rata share of the tied pixels taken
    top_share = ((above & inside).sum(1) + tied_weight * (tied & inside).sum(1)) / k

    area = inside.sum(1)
    empty = area == 0
    values = {"peak": peak, "top_share": top_share, "chance": area / n_pixels}
    return {name: np.where(empty, np.nan, value) for name, value in values.items()}


def pointing_game(maps: ArrayLike, masks: ArrayLike, top_fraction: float = 0.1) -> dict:
    """Pointing-game hit rates over items, with the chance level to read them against.

    Args:
        maps: float [n, H, W] non-negative saliency maps. NaN, infinite or negative rejected.
        masks: bool [n, H, W] (or 0/1) region of each item; items with an empty mask are skipped.
        top_fraction: share of the pixels in the top set, in (0, 1].

    Returns:
        {"peak": share of maps whose peak is inside (ties: expected share),
         "top_share": mean share of the top ``top_fraction`` pixels inside,
         "chance": mean area fraction of the masks (chance level of both),
         "n_items": items scored, "n_empty_masks": items skipped for an empty mask}.
        The rates are NaN with a ``RuntimeWarning`` when every mask is empty (or n = 0).

    Example:

        maps = np.zeros((1, 4, 4)); maps[0, 0, 0] = 1.0
        masks = np.zeros((1, 4, 4), bool); masks[0, :2, :2] = True
        pointing_game(maps, masks)   # peak 1.0, chance 0.25, top_share 0.6: k = 2 pixels, the
        # peak (inside) and one pixel's worth of the 15 tied at 0 (3 inside): (1 + 3/15) / 2
    """
    values = pointing_game_values(maps, masks, top_fraction)
    empty = int(np.isnan(values["peak"]).sum())
    counts = {"n_items": len(values["peak"]) - empty, "n_empty_masks": empty}
    if counts["n_items"] == 0:  # one warning, not one per rate
        why = "every mask is empty" if empty else "there are no maps"
        nan = _checks.mean_of_defined(values["peak"], "the pointing game", why)
        return {**{name: nan for name in values}, **counts}
    return {**{name: float(np.nanmean(value)) for name, value in values.items()}, **counts}


def _check_inputs(maps: ArrayLike, masks: ArrayLike,
                  top_fraction: float) -> tuple[np.ndarray, np.ndarray, float]:
    maps = _checks.as_float_array(maps, "maps", 3, "[n, H, W]")
    if not np.isfinite(maps).all():
        raise ValueError(f"`maps` must be finite. Received: {int(np.isinf(maps).sum())} "
                         "infinite values")
    if maps.size and maps.min() < 0:
        raise ValueError(f"`maps` must be non-negative saliency. Received: min={maps.min()}")
    if maps.shape[1] * maps.shape[2] == 0:
        raise ValueError(f"`maps` must have at least one pixel. Received: maps.shape={maps.shape}")
    masks = np.asarray(masks)
    if masks.dtype != np.bool_:
        if masks.size and not np.isin(masks, (0, 1)).all():
            raise ValueError("`masks` must be bool or hold only 0 and 1. Received values: "
                             f"{np.unique(masks)[:5].tolist()}")
        masks = masks.astype(bool)
    _checks.check_same_shape(maps, "maps", masks, "masks")
    if isinstance(top_fraction, bool) or not 0 < top_fraction <= 1:
        raise ValueError(
            f"`top_fraction` must be in (0, 1]. Received: top_fraction={top_fraction!r}")
    return maps, masks, float(top_fraction)
