"""What ``tfrec-fashion visualize`` writes into its folder (default ``RUN_DIR/attention``).

- ``attention_<method>.png``: the grid (``attention.plot_attention_grid``): a row per item, its
  image, then each customer's map overlaid with their score;
- ``attention_<method>.npz``: maps [C, B, H, W], scores [C, B], images [B, H, W, 3], user_ids
  [C], item_ids [B] (``gradcam++`` is written ``gradcampp``); for a pair model (PSA-Net) also
  partner_ids [C, B] (each map's pair is the item and that partner) and attention_weights
  [C, k] (the customers' weights over its subspaces, also on the grid's first row);
- with ``--sanity``, ``sanity_<method>.json``: ``sanity.sanity_checks`` on the same items, with
  the ``line`` a person reads.

The export carries these files to the browse page, and ``tfrec-fashion report`` shows them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfrec_fashion.visualisation.attention import (AttentionRequest, ScoreOfImage,
                                                   attention_maps, build_score_of_image,
                                                   plot_attention_grid)
from tfrec_fashion.visualisation.sanity import sanity_checks, sanity_line


@dataclass(frozen=True)
class WrittenMaps:
    """What ``write_attention_maps`` wrote, and what its caller prints of it.

    Args:
        png, arrays: the grid and the maps' ``.npz``.
        attention_weights: a pair model's customers' subspace weights [C, k], else None.
        sanity_line: the sanity checks' line (``sanity=True``), else None.
    """

    png: Path
    arrays: Path
    attention_weights: np.ndarray | None = None
    sanity_line: str | None = None


def write_attention_maps(request: AttentionRequest, out: str | Path,
                         sanity: bool = False) -> WrittenMaps:
    """Loads the run, maps the request's items for its customers and writes
    ``<out>/attention_<method>.png`` and ``.npz`` (maps [C, B, H, W], scores [C, B], ids); with
    ``sanity``, also ``<out>/sanity_<method>.json``: the two sanity checks on the same items
    (``visualisation.sanity``; its ``line`` is what a person reads)."""
    from tfrec_fashion.training.harness import load_run  # TensorFlow starts here

    _, recipe, model = load_run(request.run_dir)
    score = build_score_of_image(request.image_path, recipe, model, request.users,
                                 request.items)
    images = score.item_images[request.items]
    maps = attention_maps(score, images, request.method)
    scores = score.scores(images)
    out = Path(out)
    stem = f"attention_{_file_name(request.method)}"
    extra, captions, what = _pair_extras(score, images, recipe.dataset.items.ids), None, "score"
    if extra:
        captions = [[f"with {partner}" for partner in row] for row in extra["partner_ids"]]
        for row, weights in zip(captions, extra["attention_weights"]):
            row[0] += f"\nw {weights_text(weights)}"
        what = "pair score"  # each map's partner is in its caption
    png = plot_attention_grid(images, maps, scores, request.item_ids, request.user_ids,
                              out / f"{stem}.png",
                              f"{request.method} attention of each customer's {what}", captions)
    arrays = out / f"{stem}.npz"
    np.savez_compressed(arrays, maps=maps, scores=scores, images=images,
                        user_ids=np.array(request.user_ids), item_ids=np.array(request.item_ids),
                        **extra)
    line = None
    if sanity:
        checks = sanity_checks(request.image_path, recipe, model, request.users, images,
                               request.method, request.items)
        checks["line"] = line = sanity_line(checks)
        sanity_file(out, request.method).write_text(json.dumps(checks, indent=2))
    return WrittenMaps(png, arrays, extra.get("attention_weights"), line)


def _pair_extras(score: ScoreOfImage, images: np.ndarray, item_ids: np.ndarray) -> dict:
    """A pair model's partner_ids [C, B] and attention_weights [C, k]; {} for the others."""
    if score.partners is None:
        return {}
    return {"partner_ids": np.asarray(item_ids).astype(str)[score.partners(images)],
            "attention_weights": np.asarray(score.attention_weights, np.float32)}


def weights_text(weights: np.ndarray) -> str:
    """A customer's attention weights as printed beside the maps: "(0.71, 0.20, 0.09)"."""
    return "(" + ", ".join(f"{w:.2f}" for w in weights) + ")"


def _file_name(method: str) -> str:
    return method.replace("++", "pp")


def sanity_file(out: str | Path, method: str) -> Path:
    """Where ``write_attention_maps(..., sanity=True)`` writes the checks of ``method``'s maps:
    ``<out>/sanity_<method>.json`` (its ``line`` is what a person reads)."""
    return Path(out) / f"sanity_{_file_name(method)}.json"
