"""Item thumbnails for the browse page (``tfrec_fashion_serving.ui``): one PNG sheet holding every
item a run serves, in its serving parts' item order, and the sheet's layout.

Written by the harness beside the serving parts when the dataset has item images (the planted
world and the Fashion-MNIST world do; MovieLens does not), so export copies them from the run
directory without rebuilding the dataset::

    <run_dir>/serving/thumbnails.png    a grid of cells, item i at row i // columns, column
                                        i % columns; each cell is the item's image scaled so its
                                        longer side is at most :data:`MAX_CELL` pixels (never
                                        enlarged)
    <run_dir>/serving/thumbnails.json   {"cell_height", "cell_width", "columns", "count"}
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

SHEET_FILE = "thumbnails.png"
LAYOUT_FILE = "thumbnails.json"
MAX_CELL = 32


def images_in_order(items, item_ids: np.ndarray) -> np.ndarray | None:
    """``items.images`` (a dataset's ``Items``) in the order of ``item_ids``; None when the
    dataset has no images."""
    if items.images is None:
        return None
    row = {item: index for index, item in enumerate(np.asarray(items.ids).astype(str))}
    missing = [item for item in item_ids if item not in row]
    if missing:
        raise ValueError(f"the dataset has no image for item ids {missing[:5]} "
                         f"({len(missing)} in all)")
    return np.asarray(items.images)[[row[item] for item in item_ids]]


def thumbnail_sheet(images: np.ndarray) -> tuple[np.ndarray, dict]:
    """The sheet (uint8 [rows * cell_height, columns * cell_width, 3]) and its layout.

    Args:
        images: uint8 [N, H, W, 3] (or grey [N, H, W]), N >= 1.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or not len(images):
        raise ValueError(f"images must be uint8 [N, H, W, 3] with N >= 1. Received: "
                         f"{images.dtype} {list(images.shape)}")
    count, height, width = images.shape[:3]
    scale = min(1.0, MAX_CELL / max(height, width))
    cell = (max(1, round(height * scale)), max(1, round(width * scale)))
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    sheet = np.full((rows * cell[0], columns * cell[1], 3), 255, np.uint8)
    for index, image in enumerate(images):
        if scale < 1.0:
            image = np.asarray(Image.fromarray(image).resize((cell[1], cell[0]), Image.BOX))
        row, column = divmod(index, columns)
        sheet[row * cell[0]:(row + 1) * cell[0], column * cell[1]:(column + 1) * cell[1]] = image
    layout = {"cell_height": cell[0], "cell_width": cell[1], "columns": columns, "count": count}
    return sheet, layout


def write_thumbnails(images: np.ndarray, directory: str | Path) -> Path:
    """Writes :data:`SHEET_FILE` and :data:`LAYOUT_FILE` of ``images`` into ``directory``;
    returns the sheet's path."""
    sheet, layout = thumbnail_sheet(images)
    path = Path(directory) / SHEET_FILE
    Image.fromarray(sheet).save(path, optimize=True)
    (Path(directory) / LAYOUT_FILE).write_text(json.dumps(layout))
    return path
