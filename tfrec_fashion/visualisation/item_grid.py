"""A grid of item images with a caption under each: the catalogue as a person sees it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

from tfrec_fashion.visualisation.figures import save_figure

import matplotlib.pyplot as plt  # noqa: E402  (after figures.py chose the Agg backend)
import numpy as np  # noqa: E402


def plot_item_grid(images: np.ndarray, captions: Sequence[str], path: str | Path,
                   columns: int = 8, title: str = "") -> Path:
    """Saves uint8 images [n, h, w, 3] as a PNG grid, each with its caption.

    Args:
        images: the items to show (a few dozen at most).
        captions: one short text per image, e.g. its title or score.
        path: the PNG file to write.
        columns: images per row.
        title: figure title.
    """
    if len(images) != len(captions):
        raise ValueError(f"need one caption per image. Received: {len(images)} images, "
                         f"{len(captions)} captions")
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows),
                                squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, image, caption in zip(axes.ravel(), images, captions):
        axis.imshow(image, interpolation="nearest")
        axis.set_title(textwrap.fill(str(caption), 24), fontsize=6)
    return save_figure(figure, path, title, dpi=120)
