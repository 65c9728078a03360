"""Rendering the planted world's item images from their attributes, in NumPy only.

Every image is drawn from four attributes, so a model that reads pixels can recover them:

- category -> silhouette: a ``top`` is a shirt (torso, neckline, two sleeves), a ``bottom`` is
  trousers (waistband, hips, two legs), ``shoes`` a shoe in profile (sole, upper, toe to the right);
- length -> sleeve length of a top (short / long), leg length of a bottom (shorts / trousers),
  shaft of a shoe (low shoe / ankle boot);
- colour -> the fill colour, one of ``PALETTE`` with a small per-item shade change;
- pattern -> ``plain``, ``stripes`` (horizontal bands), ``dots`` (a grid of discs) or ``checks``
  (a chequerboard), drawn in a contrasting shade of the item's colour.

Shapes are defined in unit coordinates, so any ``image_size`` works; each item gets its own small
shift, scale, sleeve/leg width and pattern phase, plus pixel noise, so no two images are equal.
Masks come from coordinate grids and patterns from modular arithmetic, a chunk of items at a time.

The same drawing code records where each attribute is drawn (``REGIONS``: the colour-carrying
body, the pattern's motif pixels, the pixels the length changes): ``render_items_with_regions``
for codes and an rng, ``item_region_masks(world)`` for a built world, replayed from its seed and
checked against its images. These masks are the pointing game's truth
(``tfrec_fashion.metrics.pointing_game``).

May import: numpy only (``dataset.FashionDataset`` for type hints, under ``TYPE_CHECKING``).

Example:

    images = render_items(category=np.array([0, 1, 2]), colour_rgb=np.array([PALETTE["red"]] * 3),
                          pattern=np.array([1, 0, 3]), length=np.array([1, 0, 1]),
                          image_size=32, rng=np.random.default_rng(0))   # uint8 [3, 32, 32, 3]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tfrec_fashion.data.dataset import FashionDataset

CATEGORIES: tuple[str, ...] = ("top", "bottom", "shoes")
PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots", "checks")
LENGTHS: tuple[str, ...] = ("short", "long")

# Named colours (sRGB). Hues far apart and lightness spread so pixels separate them.
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (246, 246, 240),
    "grey": (128, 128, 134),
    "navy": (30, 42, 100),
    "beige": (214, 190, 146),
    "red": (198, 32, 44),
    "pink": (238, 134, 174),
    "yellow": (236, 200, 46),
    "green": (46, 142, 74),
    "blue": (60, 122, 214),
}

BACKGROUND = 212.0  # light grey, so white items still show against it (they also get an outline)
_SOLE_GREY = 70.0
_CHUNK = 512  # items rendered per vectorised step (bounds memory at large image sizes)
# Index of "images" in ``synthetic._STREAMS``: make_world draws the images from the stream
# ``SeedSequence(seed).spawn(...)[_IMAGE_STREAM]`` (a test keeps the two equal).
_IMAGE_STREAM = 1

# Where each attribute is drawn (``render_items_with_regions``), and the region that shows each
# compatibility subspace of the planted world (tone is a colour's lightness).
REGIONS: tuple[str, ...] = ("colour", "pattern", "length")
SUBSPACE_REGION: dict[str, str] = {"colour": "colour", "tone": "colour", "pattern": "pattern",
                                   "length": "length"}


def render_items(category: np.ndarray, colour_rgb: np.ndarray, pattern: np.ndarray,
                 length: np.ndarray, image_size: int, rng: np.random.Generator,
                 shade_noise: float = 10.0, pixel_noise: float = 3.0) -> np.ndarray:
    """Draws one RGB image per item.

    Args:
        category: int [n], index into ``CATEGORIES``.
        colour_rgb: float or int [n, 3], the item's base colour in 0..255.
        pattern: int [n], index into ``PATTERNS``.
        length: int [n], index into ``LENGTHS``.
        image_size: height and width in pixels (shapes scale with it; >= 16 keeps them legible).
        rng: source of the per-item jitter and noise.
        shade_noise: std of the per-item colour shift (0..255 units, per channel).
        pixel_noise: std of the per-pixel noise.

    Returns:
        uint8 [n, image_size, image_size, 3].
    """
    return _render(category, colour_rgb, pattern, length, image_size, rng, shade_noise,
                   pixel_noise, region_size=None)[0]


def render_items_with_regions(
        category: np.ndarray, colour_rgb: np.ndarray, pattern: np.ndarray, length: np.ndarray,
        image_size: int, rng: np.random.Generator, shade_noise: float = 10.0,
        pixel_noise: float = 3.0, region_size: int | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``render_items`` that also records where each attribute is drawn (``REGIONS``).

    Draws exactly what ``render_items`` draws from the same ``rng`` state (same draws, same
    order), and rasterises the regions from the same per-item jitter and the same shape code:

    - "colour": the garment body drawn in the item's colour (fill, motif and outline; a shoe's
      grey sole excluded);
    - "pattern": the pixels drawn in the motif's contrast shade (``body & motif``); all-false for
      plain items. The patterned *area* of a patterned item is its "colour" region;
    - "length": the pixels that differ between the item drawn short and drawn long (its
      forearms, lower legs or boot shaft; for a short item they lie outside its garment, where
      the long version would be drawn), so never empty.

    Args:
        category, colour_rgb, pattern, length, image_size, rng, shade_noise, pixel_noise: as in
            ``render_items``.
        region_size: height and width of the region masks (``None``: ``image_size``); another
            size rasterises the same shapes with the same per-item jitter.

    Returns:
        (uint8 images [n, image_size, image_size, 3], {region: bool [n, S, S]}).
    """
    return _render(category, colour_rgb, pattern, length, image_size, rng, shade_noise,
                   pixel_noise, region_size=region_size or image_size)


def _render(category, colour_rgb, pattern, length, image_size, rng, shade_noise, pixel_noise,
            region_size):
    """Images, and the regions at ``region_size`` unless it is ``None``."""
    n = len(category)
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    regions = None
    if region_size is not None:
        regions = {name: np.zeros((n, region_size, region_size), bool) for name in REGIONS}
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        images[start:stop], chunk_regions = _render_chunk(
            np.asarray(category[start:stop]), np.asarray(colour_rgb[start:stop], np.float32),
            np.asarray(pattern[start:stop]), np.asarray(length[start:stop]), image_size, rng,
            shade_noise, pixel_noise, region_size)
        if regions is not None:
            for name in REGIONS:
                regions[name][start:stop] = chunk_regions[name]
    return images, regions


def item_region_masks(world: FashionDataset, image_size: int | None = None,
                      items: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Where each attribute is drawn on a planted world's item images: the pointing game's truth.

    Replays the world's image stream (seed ``world.metadata["seed"]``) through
    ``render_items_with_regions``, checks that the replay draws ``world.items.images`` bit for
    bit (so the masks cannot drift from the pixels), and returns the regions described there.
    Computed on demand, never stored: a saved world is unchanged. Takes the world's render time
    (0.02 s tiny; ~8 s for the large preset's 10,000 64x64 images on 2 busy cores).

    Args:
        world: a ``make_world`` world (or one loaded from disk).
        image_size: side of the masks; ``None`` = the world's image size. Another size rasterises
            the same shapes with the same per-item jitter (e.g. a model's input size).
        items: int [m] item indices to return; ``None`` = every item.

    Returns:
        {"colour", "pattern", "length"}: bool [m, image_size, image_size] each.

    Example:

        masks = item_region_masks(world)                # world = make_world(...tiny())
        masks["pattern"].shape                          # (200, 32, 32); all-false for plain items
    """
    metadata = world.metadata
    if metadata.get("source") != "synthetic":
        raise ValueError("item region masks exist only for the planted synthetic world. "
                         f"Received: a world with source={metadata.get('source')!r}")
    config = metadata["config"]
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) != image_size
                                   or image_size < 1):
        raise ValueError(f"`image_size` must be a positive integer. Received: "
                         f"image_size={image_size!r}")
    attributes = world.items.attributes
    codes = {name: np.array([values.index(value) for value in column], np.intp)
             for name, values, column in (("category", CATEGORIES, world.items.category),
                                          ("pattern", PATTERNS, attributes["pattern"]),
                                          ("length", LENGTHS, attributes["length"]))}
    colour_rgb = np.array([PALETTE[c] for c in attributes["colour"]], np.float32)
    rng = np.random.default_rng(np.random.SeedSequence(metadata["seed"],
                                                       spawn_key=(_IMAGE_STREAM,)))
    images, regions = render_items_with_regions(
        codes["category"], colour_rgb, codes["pattern"], codes["length"], config["image_size"],
        rng, region_size=None if image_size is None else int(image_size))
    if not np.array_equal(images, world.items.images):
        raise ValueError("replaying the world's image stream did not redraw its images, so its "
                         "region masks cannot be trusted (renderer or stream order changed since "
                         "the world was built?)")
    if items is None:
        return regions
    return {name: mask[np.asarray(items)] for name, mask in regions.items()}


def _render_chunk(category, colour_rgb, pattern, length, size, rng, shade_noise, pixel_noise,
                  region_size):
    n = len(category)
    # Per-item placement jitter: shift up to 4% of the frame, scale 0.9..1.05.
    shift = rng.uniform(-0.04, 0.04, size=(n, 2)).astype(np.float32)
    scale = rng.uniform(0.9, 1.05, size=n).astype(np.float32)
    width = rng.uniform(0.9, 1.1, size=n).astype(np.float32)  # sleeve / leg / shaft width factor
    phase = rng.uniform(0.0, 8.0, size=(n, 2)).astype(np.float32)
    shade = colour_rgb + rng.normal(0.0, shade_noise, size=(n, 3)).astype(np.float32)
    jitter = (shift, scale, width, phase)
    body, sole, motif = _layout(category, pattern, length == 1, size, jitter)

    # The motif colour moves 60% of the way to white (dark colours) or to black (light ones).
    luminance = shade @ np.array([0.299, 0.587, 0.114], np.float32)
    target = np.where(luminance[:, None] < 110.0, 255.0, 0.0).astype(np.float32)
    contrast = shade + 0.35 * (target - shade)

    # Each pixel picks one of four colours of its item: background, fill, motif, sole.
    layer = body.astype(np.intp) + (body & motif) + 3 * sole
    layer += 4 * np.arange(n)[:, None, None]
    colours = np.stack([np.full_like(shade, BACKGROUND), shade, contrast,
                        np.full_like(shade, _SOLE_GREY)], axis=1)  # [n, 4, 3]
    image = colours.reshape(4 * n, 3)[layer]  # [n, size, size, 3]
    outline = (body | sole) & ~_erode(body | sole)
    image *= np.where(outline, 0.55, 1.0).astype(np.float32)[..., None]
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(pixel_noise)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if region_size is None:
        return image, None
    if region_size != size:  # same jitter and shapes, another raster
        body, _, motif = _layout(category, pattern, length == 1, region_size, jitter)
    other_body = _layout(category, pattern, length != 1, region_size, jitter)[0]
    return image, {"colour": body, "pattern": body & motif, "length": body ^ other_body}


def _layout(category, pattern, long, size, jitter):
    """Where an item's body, sole and motif lie on a ``size`` grid: three bool [n, size, size]."""
    shift, scale, width, phase = jitter
    n = len(category)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    u = (grid[None, None, :] - 0.5 - shift[:, 0, None, None]) / scale[:, None, None] + 0.5
    v = (grid[None, :, None] - 0.5 - shift[:, 1, None, None]) / scale[:, None, None] + 0.5
    u, v = np.broadcast_arrays(u, v)

    body = np.zeros((n, size, size), bool)  # pixels in the item's colour / pattern
    sole = np.zeros((n, size, size), bool)  # shoes only: a dark sole
    for code, draw in enumerate((_top_mask, _bottom_mask, _shoes_mask)):
        rows = np.flatnonzero(category == code)
        if rows.size:
            masks = draw(u[rows], v[rows], long[rows, None, None], width[rows, None, None])
            body[rows] = masks[0]
            if len(masks) > 1:
                sole[rows] = masks[1]

    # Patterns in a 32-pixel reference frame that moves with the item, so they scale with size.
    motif = np.zeros((n, size, size), bool)
    for code, draw in enumerate((None, _stripes, _dots, _checks)):
        rows = np.flatnonzero(pattern == code)
        if draw is not None and rows.size:
            motif[rows] = draw(u[rows] * 32.0 + phase[rows, 0, None, None],
                               v[rows] * 32.0 + phase[rows, 1, None, None])
    return body, sole, motif


def _stripes(x, y):
    return np.floor(y * 0.5) % 2 == 1


def _dots(x, y):
    return ((x % 6.0) - 3.0) ** 2 + ((y % 6.0) - 3.0) ** 2 < 1.6 ** 2


def _checks(x, y):
    return (np.floor(x * 0.25) + np.floor(y * 0.25)) % 2 == 1


def _top_mask(u, v, long, width):
    """A shirt: torso with a round neckline, two sleeves from the shoulders."""
    d = np.abs(u - 0.5)  # horizontal distance from the centre line; shapes are symmetric
    torso = (d < 0.19) & (v > 0.2) & (v < 0.84)
    neck = ((u - 0.5) / 0.085) ** 2 + ((v - 0.2) / 0.07) ** 2 < 1.0
    # Sleeve: a capsule from the shoulder to the elbow (short) or the wrist (long).
    end_d = np.where(long, 0.36, 0.3)
    end_v = np.where(long, 0.8, 0.44)
    sleeve = _capsule(d, v, 0.16, 0.25, end_d, end_v, 0.075 * width)
    return ((torso & ~neck) | sleeve,)


def _bottom_mask(u, v, long, width):
    """Trousers (long) or shorts (short): waistband and hips, then two legs with a gap between."""
    d = np.abs(u - 0.5)
    hips = (d < 0.2) & (v > 0.12) & (v < 0.38)
    end_v = np.where(long, 0.9, 0.56)
    # Each leg's centre drifts outwards as it goes down; the hem is flat.
    centre = 0.105 + 0.04 * (v - 0.3)
    leg = (v > 0.3) & (v < end_v) & (np.abs(d - centre) < 0.09 * width) & (d > 0.018)
    return (hips | leg,)


def _shoes_mask(u, v, long, width):
    """A shoe in profile: upper (half ellipse, toe to the right), sole, and a shaft for boots."""
    upper = (((u - 0.52) / 0.37) ** 2 + ((v - 0.74) / 0.24) ** 2 < 1.0) & (v < 0.74)
    shaft = long & (u > 0.17) & (u < 0.17 + 0.27 * width) & (v > 0.24) & (v < 0.74)
    sole = (u > 0.12) & (u < 0.9) & (v >= 0.74) & (v < 0.83)
    return (upper | shaft, sole)


def _capsule(d, v, d0, v0, d1, v1, radius):
    """Pixels within ``radius`` of the segment (d0, v0) -> (d1, v1) (vectorised over items)."""
    seg_d, seg_v = d1 - d0, v1 - v0
    t = np.clip(((d - d0) * seg_d + (v - v0) * seg_v) / (seg_d ** 2 + seg_v ** 2), 0.0, 1.0)
    return (d - d0 - t * seg_d) ** 2 + (v - v0 - t * seg_v) ** 2 < radius ** 2


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion of [n, h, w] masks (pixels outside the frame count as empty)."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    return (padded[:, 1:-1, 1:-1] & padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1]
            & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:])
