"""Complete the look as a shopper sees it: per query product, the items like it and the items
that complete it, each with its score (the look head's ``similar`` and ``complementary``)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

from tfrec_fashion.visualisation.figures import save_figure

import matplotlib.pyplot as plt  # noqa: E402  (after figures.py chose the Agg backend)
import numpy as np  # noqa: E402


def plot_look_grid(queries: np.ndarray, query_captions: Sequence[str], similar: np.ndarray,
                   similar_captions: Sequence[Sequence[str]], complementary: np.ndarray,
                   complementary_captions: Sequence[Sequence[str]], path: str | Path,
                   title: str = "") -> Path:
    """Saves a PNG with a row per query product: the query, a gap, its similar items, a gap,
    its complementary items, each image with its caption (e.g. category and cosine).

    Args:
        queries: uint8 [Q, h, w, 3], the query products.
        query_captions: Q texts.
        similar: uint8 [Q, S, h, w, 3], each query's similar items, best first.
        similar_captions: [Q][S] texts.
        complementary: uint8 [Q, K, h, w, 3], each query's complementary items, best first.
        complementary_captions: [Q][K] texts.
        path: the PNG file to write.
        title: figure title.
    """
    n_queries, n_similar, n_complementary = len(queries), similar.shape[1], complementary.shape[1]
    if similar.shape[0] != n_queries or complementary.shape[0] != n_queries or \
            len(query_captions) != n_queries:
        raise ValueError(f"need one row of similar and complementary items and one caption per "
                         f"query. Received: {n_queries} queries, {len(query_captions)} captions, "
                         f"similar {similar.shape[:2]}, complementary {complementary.shape[:2]}")
    columns = 1 + 1 + n_similar + 1 + n_complementary  # the gaps keep the three groups apart
    figure, axes = plt.subplots(n_queries, columns, figsize=(1.3 * columns, 1.7 * n_queries),
                                squeeze=False,
                                gridspec_kw={"width_ratios": [1, 0.2] + [1] * n_similar + [0.2]
                                             + [1] * n_complementary})
    for axis in axes.ravel():
        axis.axis("off")
    for row in range(n_queries):
        cells = [(0, queries[row], f"query: {query_captions[row]}")]
        cells += [(2 + j, similar[row, j], f"similar #{j + 1} {similar_captions[row][j]}")
                  for j in range(n_similar)]
        cells += [(3 + n_similar + j, complementary[row, j],
                   f"complements #{j + 1} {complementary_captions[row][j]}")
                  for j in range(n_complementary)]
        for column, image, caption in cells:
            axes[row, column].imshow(image, interpolation="nearest")
            axes[row, column].set_title(textwrap.fill(caption, 18), fontsize=6)
    return save_figure(figure, path, title, dpi=120)
