"""Pinterest Shop The Look (STL) and Complete The Look (CTL) -> items, outfits, triplets.

Shop The Look (Kang, Kim, Leskovec, Rosenberg & McAuley, "Complete the Look: Scene-based
Complementary Product Recommendation", CVPR 2019; github.com/kang205/STL-Dataset):

- ``fashion.json`` (or ``home.json``): one JSON object per line, a scene-product pair::

      {"product": "0027e30879ce3d87f82f699f148bff7e", "scene": "cdab9160072dd1800038227960ff6467",
       "bbox": [0.434097, 0.859363, 0.560254, 1.0]}

  Scenes and products are image signatures (URL
  ``http://i.pinimg.com/400x/<s[0:2]>/<s[2:4]>/<s[4:6]>/<s>.jpg``). The repository's README
  defines ``bbox`` as ``(left, top, right, bottom)``, normalised, (0, 0) the top-left corner;
  this converter follows the README (not an (x, y, w, h) reading).
- ``fashion-cat.json``: one JSON object ``{product signature: "Apparel & Accessories|Shoes"}``.
  A line may instead carry its own ``"category"`` field (it must then agree with the file).

Complete The Look (Li, Kim, Zhai, Beal & Gu, "Bootstrapping Complete The Look at Pinterest",
KDD 2020; github.com/eileenforwhat/complete-the-look-dataset):

- ``raw_train.tsv`` / ``raw_test.tsv``: a header line ``image_signature bounding_x bounding_y
  bounding_width bounding_height label`` (space-separated in the release), then one item per
  tab-separated line ``<signature>\\t<x>\\t<y>\\t<width>\\t<height>\\t<label>``. A signature is one
  outfit collage image; rows sharing it are that outfit's items; the box is normalised with
  (x, y) its top-left corner (pixel box ``x*W, y*H, (x+w)*W, (y+h)*H``).
- optional FITB file (JSON): ``[{"question": [{"signature", "x", "y", "w", "h", "label"}, ...],
  "answers": [...]}]``, values as strings, the correct answer at index 0.

Output, STL: items = products (first appearance), category = the last level of the category
path ("unknown" without one; those items are left out of triplets), attributes
``category_path``, ``image_url`` and the box of the product's first scene (``scene``,
``bbox_left``, ``bbox_top``, ``bbox_right``, ``bbox_bottom``); ``scene_products.csv`` keeps every
(scene, product, box); outfits = scenes. Repeated (scene, product) lines keep the first (counted).

Output, CTL: items = distinct rows (repeats counted and skipped, as the release's sampler does),
id ``<signature>_<k>`` (k-th item of that outfit in file order), category = label, attributes
``outfit``, ``bbox_x``, ``bbox_y``, ``bbox_width``, ``bbox_height``; outfits = signatures, split by
file name (``raw_train.tsv`` -> train) in ``outfit_splits.csv``; FITB in ``fitb.json`` as
``[{"question": [item ids], "answers": [item ids], "answer": 0}]``. With ``images_dir`` holding
``<signature>.jpg`` collages, each item's crop is written as ``images/<item_id>.png``.

Both: outfit slots are the categories (sorted; k items of one category fill ``<c>``, ``<c>_2``..);
``triplets=True`` (default) samples complete-the-look triplets: anchor and positive of different
categories from one scene/outfit, negative of the positive's category from another
(``_tables.sample_complementary_triplets``, seeded by ``seed``). STL product images are copied
from ``images_dir/<signature>.jpg`` when given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfrec_fashion.data.converters import _tables
from tfrec_fashion.data.converters._io import (
    PathLike,
    as_number,
    iter_fitb_questions,
    iter_lines,
    iter_records,
    load_json,
    require_fields,
    split_sources,
)
from tfrec_fashion.data.dataset import FashionDataset, Items, Outfits, Users, write_csv
from tfrec_fashion.errors import DataError, MissingDataError

URL = "http://i.pinimg.com/400x/{0}/{1}/{2}/{3}.jpg"
CTL_HEADER = ("image_signature", "bounding_x", "bounding_y", "bounding_width",
              "bounding_height", "label")


def convert(*paths: PathLike, output_dir: PathLike | None = None, **options) -> FashionDataset:
    """Converts STL (``*.json`` lines) or CTL (``*.tsv``) files, chosen by the sources' suffix."""
    sources = [Path(p) for p in (paths if output_dir is not None else paths[:-1])]
    if any(p.suffix == ".tsv" for p in sources):
        return convert_ctl(*paths, output_dir=output_dir, **options)
    return convert_stl(*paths, output_dir=output_dir, **options)


def image_url(signature: str) -> str:
    """The public image URL of a Pinterest signature (from the STL README)."""
    return URL.format(signature[0:2], signature[2:4], signature[4:6], signature)


# ----------------------------------------------------------------------------- Shop The Look
def convert_stl(*paths: PathLike, output_dir: PathLike | None = None,
                categories_path: PathLike | None = None, images_dir: PathLike | None = None,
                images: str = "copy", triplets: bool = True, seed: int = 0,
                name: str | None = None) -> FashionDataset:
    """Converts STL scene-product pairs (+ category file, + product image folder) and saves.

    Args:
        paths: ``fashion.json``, optionally ``fashion-cat.json`` (name ending ``cat.json``) and a
            folder of ``<signature>.jpg`` product images, then the output folder.
        images: "copy" or "symlink" the product images (when a folder is given), or "none".
        triplets: sample complete-the-look triplets; ``seed`` seeds them.

    Raises:
        DataError: bad JSON, missing field, bad bbox (each naming file and line), a category
            disagreeing with the category file, non-empty output folder.
    """
    _tables.check_image_mode(images)
    sources, output_dir = split_sources(paths, output_dir, "pinterest_stl")
    pairs_path, categories_path, images_dir = _classify_stl(sources, categories_path, images_dir)
    with _tables.staging(output_dir) as staging:
        category_of = _read_category_file(categories_path) if categories_path else {}
        products, scenes = _tables.IdIndex(), _tables.IdIndex()
        line_category: dict[int, str] = {}
        rows: list[tuple[int, int, list[float]]] = []
        seen: set[tuple[int, int]] = set()
        repeated = 0
        for number, record in iter_records(pairs_path, python_literals=False):
            require_fields(record, ("product", "scene", "bbox"), pairs_path, number,
                           {"product": str, "scene": str, "category": str})
            box = _box(record["bbox"], pairs_path, number)
            p, s = products.add(record["product"]), scenes.add(record["scene"])
            if "category" in record:
                known = category_of.get(record["product"], line_category.get(p))
                if known is not None and known != record["category"]:
                    raise DataError(f"{pairs_path}, line {number}: category "
                                    f"{record['category']!r} of product {record['product']} "
                                    f"disagrees with {known!r}")
                line_category[p] = record["category"]
            if (s, p) in seen:
                repeated += 1
                continue
            seen.add((s, p))
            rows.append((s, p, box))
        if not rows:
            raise DataError(f"{pairs_path}: no scene-product pairs")
        product_ids, scene_ids = products.ids, scenes.ids
        paths_ = [category_of.get(pid, line_category.get(k, "")) for k, pid in
                  enumerate(product_ids)]
        category = np.array([c.split("|")[-1] if c else "unknown" for c in paths_], dtype=str)
        first_box: dict[int, tuple[int, list[float]]] = {}
        groups: list[list[int]] = [[] for _ in scene_ids]
        for s, p, box in rows:
            first_box.setdefault(p, (s, box))
            groups[s].append(p)
        attributes = {
            "category_path": np.array(paths_, dtype=str),
            "image_url": np.array([image_url(pid) for pid in product_ids], dtype=str),
            "scene": np.array([scene_ids[first_box[p][0]] for p in range(len(product_ids))]),
            **{f"bbox_{side}": np.array([first_box[p][1][k] for p in range(len(product_ids))],
                                        np.float32)
               for k, side in enumerate(("left", "top", "right", "bottom"))}}
        image_paths = _copy_images(images_dir, product_ids, staging, images)
        metadata = {
            "source": "Pinterest Shop The Look (Kang et al. 2019)",
            "files": [p.name for p in (pairs_path, categories_path) if p],
            "bbox": "left, top, right, bottom (normalised), of the product's first scene",
            "extra_files": {"scene_products.csv": "every scene-product pair with its box"}}
        dataset = _assemble(
            name or f"pinterest_stl_{pairs_path.name.split('.')[0]}", product_ids, category,
            attributes, image_paths, scene_ids, groups, triplets=triplets, seed=seed,
            converter="pinterest_stl", metadata=metadata, staging=staging,
            skipped={"repeated_scene_product_lines": repeated},
            stats={"products_without_category": int(np.count_nonzero(category == "unknown"))})
        write_csv(staging / "scene_products.csv", {
            "scene": [scene_ids[s] for s, _, _ in rows],
            "product": [product_ids[p] for _, p, _ in rows],
            **{side: [box[k] for _, _, box in rows]
               for k, side in enumerate(("left", "top", "right", "bottom"))}})
    return dataset


def _classify_stl(sources: list[Path], categories_path: PathLike | None,
                  images_dir: PathLike | None) -> tuple[Path, Path | None, Path | None]:
    categories = Path(categories_path) if categories_path else None
    folder = Path(images_dir) if images_dir else None
    pairs = []
    for path in sources:
        if path.is_dir() and folder is None:
            folder = path
        elif path.name.endswith("cat.json") and categories is None:
            categories = path
        else:
            pairs.append(path)
    if len(pairs) != 1:
        raise ValueError("pinterest_stl: expected one scene-product file (plus optional "
                         f"*-cat.json and an image folder), got {[str(p) for p in pairs]}")
    return pairs[0], categories, _check_images_dir(folder)


def _read_category_file(path: Path) -> dict[str, str]:
    categories = load_json(path)
    if not isinstance(categories, dict) or not all(isinstance(v, str) for v in
                                                   categories.values()):
        raise DataError(f"{path}: expected one object mapping product signature -> category path")
    return categories


def _box(value: object, path: Path, number: int) -> list[float]:
    if not isinstance(value, list) or len(value) != 4:
        raise DataError(f"{path}, line {number}: bbox should be [left, top, right, bottom], got "
                        f"{value!r:.80}")
    box = [as_number(v, path, number, "bbox") for v in value]
    left, top, right, bottom = box
    if not all(0.0 <= v <= 1.0 for v in box) or left > right or top > bottom:
        raise DataError(f"{path}, line {number}: bbox {value} is not a normalised (left, top, "
                        "right, bottom) box inside [0, 1]")
    return box


def _copy_images(images_dir: Path | None, ids: np.ndarray, staging: Path,
                 mode: str) -> np.ndarray | None:
    if images_dir is None or mode == "none":
        return None
    relative = np.array([f"images/{i}.jpg" for i in ids])
    for item_id, target in zip(ids, relative):
        _tables.place_image(images_dir / f"{item_id}.jpg", staging, target, mode)
    return relative


# ----------------------------------------------------------------------------- Complete The Look
def convert_ctl(*paths: PathLike, output_dir: PathLike | None = None,
                fitb_path: PathLike | None = None, images_dir: PathLike | None = None,
                triplets: bool = True, triplet_splits: Sequence[str] | None = None,
                seed: int = 0, name: str = "pinterest_ctl") -> FashionDataset:
    """Converts CTL ``raw_*.tsv`` files (+ FITB JSON, + collage folder) and saves the dataset.

    Args:
        paths: one or more ``raw_<split>.tsv``, optionally the FITB ``.json`` and a folder of
            ``<signature>.jpg`` collages, then the output folder.
        triplets: sample triplets from the outfits of ``triplet_splits`` (default: all read).

    Raises:
        DataError: a bad header or line (wrong field count, bad number, box outside [0, 1]),
            a FITB entry matching no item (each naming file and line / question), non-empty
            output folder.
    """
    sources, output_dir = split_sources(paths, output_dir, "pinterest_ctl")
    tables, fitb_path, images_dir = _classify_ctl(sources, fitb_path, images_dir)
    with _tables.staging(output_dir) as staging:
        items: dict[tuple, int] = {}
        rows: list[tuple[str, list[float], str]] = []
        outfits = _tables.IdIndex()
        outfit_split: dict[int, str] = {}
        groups: list[list[int]] = []
        repeated = 0
        for path in tables:
            split = path.stem.removeprefix("raw_")
            for signature, box, label, number in _read_ctl_rows(path):
                key = (signature, *box, label)
                if key in items:
                    repeated += 1
                    continue
                o = outfits.add(signature)
                if o == len(groups):
                    groups.append([])
                    outfit_split[o] = split
                elif outfit_split[o] != split:
                    raise DataError(f"{path}, line {number}: outfit {signature} also appears in "
                                    f"the {outfit_split[o]} split")
                items[key] = len(rows)
                groups[o].append(len(rows))
                rows.append((signature, box, label))
        if not rows:
            raise DataError(f"{tables[0]}: no items")
        outfit_ids = outfits.ids
        position = {r: k for group in groups for k, r in enumerate(group)}
        item_ids = np.array([f"{sig}_{position[r]}" for r, (sig, _, _) in enumerate(rows)])
        category = np.array([label for _, _, label in rows], dtype=str)
        attributes = {"outfit": np.array([sig for sig, _, _ in rows], dtype=str),
                      **{f"bbox_{side}": np.array([box[k] for _, box, _ in rows], np.float32)
                         for k, side in enumerate(("x", "y", "width", "height"))}}
        image_paths = _crop_images(images_dir, rows, item_ids, staging) if images_dir else None
        chosen = [g for o, g in enumerate(groups)
                  if triplet_splits is None or outfit_split[o] in triplet_splits]
        extra = {"outfit_splits.csv": "outfit_id, split (from the file name)"}
        if fitb_path:
            extra["fitb.json"] = "FITB questions as item ids, answer 0 is true"
        metadata = {"source": "Pinterest Complete The Look (Li et al. 2020)",
                    "files": [p.name for p in (*tables, fitb_path) if p],
                    "bbox": "x, y, width, height (normalised, top-left origin)",
                    "extra_files": extra}
        dataset = _assemble(
            name, item_ids, category, attributes, image_paths, outfit_ids, groups,
            triplets=triplets, seed=seed, converter="pinterest_ctl", metadata=metadata,
            staging=staging, skipped={"repeated_rows": repeated}, stats={},
            triplet_groups=chosen)
        write_csv(staging / "outfit_splits.csv", {
            "outfit_id": outfit_ids, "split": [outfit_split[o] for o in range(len(outfit_ids))]})
        if fitb_path:
            _tables.write_json(staging / "fitb.json", _read_ctl_fitb(fitb_path, items, item_ids))
    return dataset


def _classify_ctl(sources: list[Path], fitb_path: PathLike | None,
                  images_dir: PathLike | None) -> tuple[list[Path], Path | None, Path | None]:
    fitb = Path(fitb_path) if fitb_path else None
    folder = Path(images_dir) if images_dir else None
    tables = []
    for path in sources:
        if path.is_dir() and folder is None:
            folder = path
        elif path.suffix == ".json" and fitb is None:
            fitb = path
        elif path.suffix == ".tsv":
            tables.append(path)
        else:
            raise ValueError(f"pinterest_ctl: {path} is neither a .tsv table, a FITB .json nor "
                             "an image folder")
    if not tables:
        raise ValueError("pinterest_ctl: expected at least one raw_<split>.tsv file")
    return tables, fitb, _check_images_dir(folder)


def _read_ctl_rows(path: Path):
    """Yields (signature, [x, y, w, h], label, line number) of a CTL raw TSV file."""
    header_seen = False
    for number, line in iter_lines(path):
        if not header_seen:
            header_seen = True
            if tuple(line.split()) != CTL_HEADER:
                raise DataError(f"{path}, line {number}: header should be "
                                f"{' '.join(CTL_HEADER)!r}, got {line[:80]!r}")
            continue
        fields = line.split("\t")
        if len(fields) != 6 or not fields[0] or not fields[5]:
            raise DataError(f"{path}, line {number}: expected 6 tab-separated fields "
                            f"(signature, x, y, width, height, label), got {len(fields)}")
        box = [as_number(v, path, number, name) for v, name in zip(fields[1:5], CTL_HEADER[1:5])]
        x, y, w, h = box
        if min(box) < 0 or w <= 0 or h <= 0 or x + w > 1 + 1e-6 or y + h > 1 + 1e-6:
            raise DataError(f"{path}, line {number}: box (x={x}, y={y}, w={w}, h={h}) is not a "
                            "normalised box inside [0, 1]")
        yield fields[0], box, fields[5], number


def _crop_images(images_dir: Path, rows: list, item_ids: np.ndarray, staging: Path) -> np.ndarray:
    from PIL import Image

    from tfrec_fashion.data.images import read_image

    (staging / "images").mkdir(exist_ok=True)
    relative = np.array([f"images/{i}.png" for i in item_ids])
    collages: dict[str, np.ndarray] = {}
    for (signature, (x, y, w, h), _), target in zip(rows, relative):
        if signature not in collages:
            collages.clear()  # rows of one outfit are consecutive; keep one collage in memory
            collages[signature] = read_image(images_dir / f"{signature}.jpg")
        image = collages[signature]
        height, width = image.shape[:2]
        box = (math.floor(x * width), math.floor(y * height),
               min(width, math.ceil((x + w) * width)), min(height, math.ceil((y + h) * height)))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DataError(f"{images_dir / signature}.jpg: box {box} of item {target} is empty")
        Image.fromarray(image[box[1]:box[3], box[0]:box[2]]).save(staging / target)
    return relative


def _read_ctl_fitb(path: Path, items: dict[tuple, int], item_ids: np.ndarray) -> list[dict]:
    out = []
    for where, question in iter_fitb_questions(path):
        resolved = []
        for part in ("question", "answers"):
            ids = []
            for entry in question[part]:
                fields = ("signature", "x", "y", "w", "h", "label")
                if not isinstance(entry, dict) or any(f not in entry for f in fields):
                    raise DataError(f"{where}: {part} entries should be objects with {fields}, "
                                    f"got {entry!r:.80}")
                try:
                    box = [float(entry[f]) for f in "xywh"]
                except (TypeError, ValueError):
                    raise DataError(f"{where}: {part} item {entry} has a non-numeric box") \
                        from None
                key = (entry["signature"], *box, entry["label"])
                if key not in items:
                    raise DataError(f"{where}: {part} item {entry} matches no row of the tables")
                ids.append(str(item_ids[items[key]]))
            resolved.append(ids)
        out.append({"question": resolved[0], "answers": resolved[1], "answer": 0})
    return out


# ----------------------------------------------------------------------------- shared
def _assemble(name: str, item_ids: np.ndarray, category: np.ndarray, attributes: dict,
              image_paths: np.ndarray | None, outfit_ids: np.ndarray, groups: list[list[int]],
              *, triplets: bool, seed: int, converter: str, metadata: dict, staging: Path,
              skipped: dict[str, int], stats: dict[str, int],
              triplet_groups: list[list[int]] | None = None) -> FashionDataset:
    """Builds and saves the STL / CTL dataset: outfits by category slots, optional triplets."""
    slots, slot_items = _tables.slot_matrix(
        [[(str(category[i]), i) for i in group] for group in groups], leading=())
    triplet_table = None
    if triplets:
        known = [[i for i in g if category[i] != "unknown"]
                 for g in (groups if triplet_groups is None else triplet_groups)]
        triplet_table, skipped["triplet_pairs_without_negative"] = \
            _tables.sample_complementary_triplets(known, category, seed)
        metadata["triplets"] = {"seed": seed, "rule": "anchor, positive: different categories "
                                "of one outfit; negative: positive's category, another outfit"}
    dataset = FashionDataset(
        name=name, users=Users(ids=np.zeros(0, str)),
        items=Items(ids=item_ids, category=category, attributes=attributes,
                    image_paths=image_paths),
        outfits=Outfits(ids=outfit_ids, user=np.full(len(outfit_ids), -1, np.int32),
                        items=slot_items, slots=slots),
        triplets=triplet_table, metadata=metadata)
    return _tables.save(dataset, staging, converter, skipped, stats)


def _check_images_dir(images_dir: Path | None) -> Path | None:
    if images_dir is not None and not images_dir.is_dir():
        raise MissingDataError(f"image folder {images_dir} does not exist")
    return images_dir
