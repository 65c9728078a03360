"""What the browse page (``tfrec_fashion_serving.ui``) shows beside a version, written into its
``assets.extra/`` by ``writer.export_parts``; file names are ``contract``'s.

- the catalogue (every export): the customers and items the version knows, each item's category,
  and for the compatibility head the categories each category is completed with;
- the thumbnail sheet and its layout, copied from the run (``<run_dir>/serving/thumbnails.*``,
  written by the harness when the dataset has item images: ``training.thumbnails``);
- the attention maps ``tfrec-fashion visualize`` wrote into ``<run_dir>/attention/``, one JSON
  per method (customers, items, scores, the items' images and each customer's maps, both
  scaled down to at most :data:`MAX_ATTENTION_SIDE` pixels and quantised to bytes, base64; and
  the sanity checks' line when ``visualize --sanity`` wrote them) and its PNG grid.

A run without images or attention maps gets the catalogue only.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from tfrec_fashion.training.serving_parts import DIRECTORY as SERVING_DIRECTORY, Parts
from tfrec_fashion.training.thumbnails import LAYOUT_FILE, SHEET_FILE
from tfrec_fashion_serving import contract

ATTENTION_RUN_DIRECTORY = "attention"  # where `tfrec-fashion visualize` writes by default
MAX_ATTENTION_SIDE = 64


def write_browse_assets(parts: Parts, version_dir: Path, run_dir: str | Path | None) -> None:
    """Writes the catalogue into ``version_dir/assets.extra`` and, when ``run_dir`` has them,
    the thumbnails and the attention maps."""
    (version_dir / contract.CATALOGUE_FILE).write_text(json.dumps(catalogue(parts)))
    if run_dir is None:
        return
    serving = Path(run_dir) / SERVING_DIRECTORY
    if (serving / SHEET_FILE).is_file() and (serving / LAYOUT_FILE).is_file():
        shutil.copyfile(serving / SHEET_FILE, version_dir / contract.THUMBNAILS_FILE)
        shutil.copyfile(serving / LAYOUT_FILE, version_dir / contract.THUMBNAILS_LAYOUT_FILE)
    maps = sorted((Path(run_dir) / ATTENTION_RUN_DIRECTORY).glob("attention_*.npz"))
    if maps:
        out = version_dir / contract.ATTENTION_DIRECTORY
        out.mkdir(parents=True, exist_ok=True)
        for path in maps:
            method = path.stem.removeprefix("attention_")
            maps = attention_for_page(path, method)
            sanity = path.with_name(f"sanity_{method}.json")  # `visualize --sanity`
            if sanity.is_file():
                maps["sanity"] = json.loads(sanity.read_text()).get("line")
            (out / f"{method}.json").write_text(json.dumps(maps))
            if path.with_suffix(".png").is_file():
                shutil.copyfile(path.with_suffix(".png"), out / f"{method}.png")


def catalogue(parts: Parts) -> dict:
    """The ids and categories the page lists, in the parts' order (the thumbnails' order)."""
    answer = {"head": parts.HEAD, "user_ids": parts.user_ids.tolist(),
              "item_ids": parts.item_ids.tolist(),
              "item_categories": parts.item_categories.tolist()}
    complements = getattr(parts, "complements", None)
    if complements is not None:
        answer["complements"] = complements
    return answer


def attention_for_page(path: Path, method: str) -> dict:
    """One ``attention_<method>.npz`` (maps [C, B, H, W] in [0, 1], scores [C, B], images
    [B, H, W, 3] in [0, 1], user_ids [C], item_ids [B]) as the page reads it: ``maps[c][b]`` is
    base64 of uint8 [h, w] (255 = the map's peak), ``images[b]`` base64 of uint8 [h, w, 3]."""
    with np.load(path, allow_pickle=False) as stored:
        maps, scores, images = stored["maps"], stored["scores"], stored["images"]
        user_ids, item_ids = stored["user_ids"].astype(str), stored["item_ids"].astype(str)
    if maps.ndim != 4 or maps.shape[:2] != scores.shape or \
            maps.shape[:2] != (len(user_ids), len(item_ids)) or len(images) != len(item_ids):
        raise ValueError(f"{path}: maps {list(maps.shape)}, scores {list(scores.shape)}, "
                         f"images {list(images.shape)} do not match {len(user_ids)} customers x "
                         f"{len(item_ids)} items")
    height, width = maps.shape[2:]
    scale = min(1.0, MAX_ATTENTION_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))

    def as_bytes(array: np.ndarray, mode: str) -> str:
        image = Image.fromarray(array, mode)
        if scale < 1.0:
            image = image.resize(size, Image.BILINEAR)
        return base64.b64encode(np.asarray(image, np.uint8).tobytes()).decode("ascii")

    def quantised(values: np.ndarray) -> np.ndarray:
        return np.round(np.clip(np.nan_to_num(values), 0.0, 1.0) * 255).astype(np.uint8)

    return {"method": method, "user_ids": user_ids.tolist(), "item_ids": item_ids.tolist(),
            "scores": np.asarray(scores, np.float64).round(5).tolist(),
            "height": size[1], "width": size[0],
            "maps": [[as_bytes(quantised(item_map), "L") for item_map in row] for row in maps],
            "images": [as_bytes(quantised(image), "RGB") for image in images]}
