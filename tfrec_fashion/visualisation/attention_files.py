"""What ``tfrec-fashion visualize`` writes into its folder (default ``RUN_DIR/attention``).

- ``attention_<method>.png``: the grid (``attention.plot_attention_grid``): a row per item, its
  image, then each customer's map overlaid with their score;
- ``attention_<method>.npz``: maps [C, B, H, W], scores [C, B], images [B, H, W, 3], user_ids
  [C], item_ids [B] (``gradcam++`` is written ``gradcampp``); for a pair model (PSA-Net) also
  partner_ids [C, B] (each map's pair is the item and that partner) and attention_weights
  [C, k] (the customers' weights over its subspaces, also on the grid's first row); for PAN
  partner_ids [C, B, S - 1] (each map's outfit is the item and those partners: the customer's
  first held-out outfit); for complete the look, user_ids are the anchor items' ids (each map
  is of sim(anchor, item) over the item's image);
- for PAN, ``pan_spatial_attention.png`` and ``.npz``: its own user-aware spatial attention
  (Fig. 3, ``pan_attention.pan_attention_figure``) of the same customers over the mapped items
  and the first customer's held-out outfit; spatial_attention [C, I, h, w], user_ids, item_ids;
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
        spatial_png: PAN's spatial attention figure (Fig. 3), else None.
    """

    png: Path
    arrays: Path
    attention_weights: np.ndarray | None = None
    sanity_line: str | None = None
    spatial_png: Path | None = None


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
        captions = [[f"with {' + '.join(np.atleast_1d(partner))}" for partner in row]
                    for row in extra["partner_ids"]]
        for row, weights in zip(captions, extra.get("attention_weights", ())):
            row[0] += f"\nw {weights_text(weights)}"
        # each map's partner (PSA-Net) or outfit (PAN) is in its caption
        what = "pair score" if "attention_weights" in extra else "outfit score"
    labels, whose = request.user_ids, "customer's"
    if request.image_path == "complete_the_look":  # the columns are anchor items
        labels = [f"anchor {anchor}" for anchor in request.user_ids]
        whose, what = "anchor's", "style cosine"  # cos(s_anchor, s_item)
    png = plot_attention_grid(images, maps, scores, request.item_ids, labels,
                              out / f"{stem}.png",
                              f"{request.method} attention of each {whose} {what}", captions)
    arrays = out / f"{stem}.npz"
    np.savez_compressed(arrays, maps=maps, scores=scores, images=images,
                        user_ids=np.array(request.user_ids), item_ids=np.array(request.item_ids),
                        **extra)
    spatial_png = (_pan_spatial_figure(recipe, model, request, out)
                   if request.image_path == "pan" else None)
    line = None
    if sanity:
        checks = sanity_checks(request.image_path, recipe, model, request.users, images,
                               request.method, request.items)
        checks["line"] = line = sanity_line(checks)
        sanity_file(out, request.method).write_text(json.dumps(checks, indent=2))
    return WrittenMaps(png, arrays, extra.get("attention_weights"), line, spatial_png)


def _pair_extras(score: ScoreOfImage, images: np.ndarray, item_ids: np.ndarray) -> dict:
    """A pair model's partner_ids [C, B] and attention_weights [C, k], PAN's partner_ids
    [C, B, S - 1]; {} for the others."""
    if score.partners is None:
        return {}
    extra = {"partner_ids": np.asarray(item_ids).astype(str)[score.partners(images)]}
    if score.attention_weights is not None:
        extra["attention_weights"] = np.asarray(score.attention_weights, np.float32)
    return extra


def _pan_spatial_figure(recipe, model, request: AttentionRequest, out: Path) -> Path:
    """PAN's Fig. 3 beside the maps: the request's customers over the mapped items and the
    first customer's held-out outfit (one item per slot); ``pan_spatial_attention.png`` and its
    maps in ``.npz``."""
    from tfrec_fashion.visualisation.attention import user_vectors
    from tfrec_fashion.visualisation.pan_attention import customer_outfits, pan_attention_figure

    _, outfits = customer_outfits(recipe, model, user_vectors(recipe, model)[request.users[:1]])
    items = list(dict.fromkeys([*request.items, *(int(i) for i in outfits[0])]))
    png = out / "pan_spatial_attention.png"
    maps = pan_attention_figure(recipe, model, request.users, items, png)
    np.savez_compressed(png.with_suffix(".npz"), spatial_attention=maps,
                        user_ids=np.array(request.user_ids),
                        item_ids=np.asarray(recipe.dataset.items.ids).astype(str)[items])
    return png


def weights_text(weights: np.ndarray) -> str:
    """A customer's attention weights as printed beside the maps: "(0.71, 0.20, 0.09)"."""
    return "(" + ", ".join(f"{w:.2f}" for w in weights) + ")"


def _file_name(method: str) -> str:
    return method.replace("++", "pp")


def sanity_file(out: str | Path, method: str) -> Path:
    """Where ``write_attention_maps(..., sanity=True)`` writes the checks of ``method``'s maps:
    ``<out>/sanity_<method>.json`` (its ``line`` is what a person reads)."""
    return Path(out) / f"sanity_{_file_name(method)}.json"
