"""Polyvore Outfits (type-aware compatibility) -> the project's dataset layout.

Public format (Vasileva, Plummer, Dusad, Rajpal, Kumar & Forsyth, "Learning Type-Aware
Embeddings for Fashion Compatibility", ECCV 2018; github.com/mvasil/fashion-compatibility, whose
``polyvore_outfits.py`` reads it). The release folder ``polyvore_outfits/``::

    polyvore_item_metadata.json   {item_id: {"semantic_category": "tops", "category_id": "11",
                                   "title": ..., "url_name": ..., "description": ..., ...}}
    categories.csv                optional: category_id,fine category name,semantic category
    images/<item_id>.jpg          one image per item
    nondisjoint/  and  disjoint/  two versions of the splits, each holding
        train.json, valid.json, test.json
                                  [{"set_id": "210750761", "items": [{"item_id": "154249722",
                                   "index": 1}, ...]}, ...]
        fill_in_blank_<split>.json
                                  [{"question": ["<set_id>_<index>", ...], "answers":
                                   ["<set_id>_<index>", ...], "blank_position": 2}, ...]
        compatibility_<split>.txt one outfit per line: "<label 1|0> <set_id>_<index> ..."

Questions name items as ``<set_id>_<index>`` of outfits of the same split. The semantic
categories are all-body, bags, bottoms, hats, jewellery, outerwear, scarves, shoes, sunglasses,
tops and accessories. ``semantic_category`` is required; the other metadata fields are optional.

Output:

- items: every item of the read splits' outfits (order of first appearance), id = item_id,
  category = the semantic category with tops -> top, bottoms -> bottom (shoes stays shoes, the
  others keep their names), attributes ``semantic_category``, ``category_id``,
  ``fine_category`` (from categories.csv, "" without it), ``url_name``, ``description``;
  titles from ``title``; images ``images/<item_id>.jpg`` (copied or symlinked;
  ``images="none"`` skips). No users (the dataset is not personalised).
- outfits: id = set_id, no user, slots top, bottom, shoes, then the other categories sorted; an
  outfit with k items of one category fills ``<category>``, ``<category>_2``, ... (in ``index``
  order), so no item is dropped.
- ``outfit_splits.csv``: outfit_id, split (train / valid / test).
- ``fitb.json``: ``[{"split", "question": [item ids], "answers": [item ids], "answer": index of
  the answer from the question's outfit (the reference code's ground truth), "blank_position"}]``.
- ``compatibility.json``: ``[{"split", "label": 1 or 0, "items": [item ids]}]``.
- triplets (``triplets=True``): sampled from the ``triplet_splits`` outfits by the
  complete-the-look rule (anchor and positive of different categories from one outfit, negative
  of the positive's category from another outfit), seeded by ``seed``.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfrec_fashion.data.converters import _tables
from tfrec_fashion.data.converters._io import (
    PathLike,
    iter_fitb_questions,
    iter_lines,
    load_json,
    open_binary,
    require_file,
    split_sources,
)
from tfrec_fashion.data.dataset import FashionDataset, Items, Outfits, Users, write_csv
from tfrec_fashion.errors import DataError

SPLITS = ("train", "valid", "test")
VERSIONS = ("nondisjoint", "disjoint")
SLOT_NAMES = {"tops": "top", "bottoms": "bottom", "shoes": "shoes"}
_TEXT_FIELDS = ("category_id", "url_name", "description")


def convert(*paths: PathLike, output_dir: PathLike | None = None,
            version: str = "nondisjoint", splits: Sequence[str] = SPLITS, images: str = "copy",
            triplets: bool = False, triplet_splits: Sequence[str] = ("train",), seed: int = 0,
            name: str | None = None) -> FashionDataset:
    """Converts the Polyvore Outfits release folder and saves the dataset.

    Args:
        paths: the ``polyvore_outfits`` folder, then the output folder (unless ``output_dir``).
        version: "nondisjoint" or "disjoint" split version.
        splits: which of train / valid / test to read.
        images: "copy", "symlink" or "none".
        triplets: also sample complete-the-look triplets from ``triplet_splits``.
        seed: the triplet sampler's seed.
        name: dataset name; default ``polyvore_outfits_<version>``.

    Raises:
        DataError: bad JSON (naming file and line), an item missing from the metadata, an
            unknown ``<set_id>_<index>`` in a question (naming file and line / question), a
            repeated set_id, non-empty output folder.
        MissingDataError: a required file or an image is missing.
    """
    _tables.check_image_mode(images)
    if version not in VERSIONS:
        raise ValueError(f"`version` must be one of {VERSIONS}. Received: version={version!r}")
    splits = tuple(splits)
    if not splits or set(splits) - set(SPLITS) or \
            (triplets and set(triplet_splits) - set(splits)):
        raise ValueError(f"`splits` must be a non-empty subset of {SPLITS} containing "
                         f"`triplet_splits`. Received: splits={splits}, "
                         f"triplet_splits={tuple(triplet_splits)}")
    sources, output_dir = split_sources(paths, output_dir, "polyvore_outfits")
    if len(sources) != 1 or not sources[0].is_dir():
        raise ValueError(f"polyvore_outfits: expected one folder, got {[str(p) for p in sources]}")
    root = sources[0]
    with _tables.staging(output_dir) as staging:
        meta_path = require_file(root / "polyvore_item_metadata.json", "the item metadata")
        metadata = load_json(meta_path)
        if not isinstance(metadata, dict):
            raise DataError(f"{meta_path}: expected an object item_id -> fields")
        fine_names = _read_categories(root / "categories.csv")
        items = _tables.IdIndex()
        outfit_ids: list[str] = []
        outfit_items: list[list[tuple[str, int]]] = []
        outfit_split: list[str] = []
        references: dict[str, dict[str, int]] = {}
        categories: dict[int, str] = {}
        for split in splits:
            path = require_file(root / version / f"{split}.json", f"the {split} outfits")
            references[split] = _read_outfits(path, metadata, meta_path, items, categories,
                                              outfit_ids, outfit_items, outfit_split, split)
        duplicates = [o for o, n in Counter(outfit_ids).items() if n > 1]
        if duplicates:
            raise DataError(f"{root / version}: set_id(s) {sorted(duplicates)[:5]} appear in more "
                            "than one outfit")
        item_ids = items.ids
        category = np.array([categories[i] for i in range(len(item_ids))], dtype=str)
        slots, slot_items = _tables.slot_matrix(outfit_items)
        fields = {f: [_field(metadata[i], f, meta_path, i) for i in item_ids]
                  for f in (*_TEXT_FIELDS, "title", "semantic_category")}
        attributes = {"semantic_category": np.array(fields["semantic_category"], dtype=str),
                      **{f: np.array(fields[f], dtype=str) for f in _TEXT_FIELDS},
                      "fine_category": np.array([fine_names.get(c, "") for c in
                                                 fields["category_id"]], dtype=str)}
        image_paths = None
        if images != "none":
            image_paths = np.array([f"images/{i}.jpg" for i in item_ids])
            for relative in image_paths:
                _tables.place_image(root / relative, staging, relative, images)
        triplet_table, skipped_pairs = None, 0
        if triplets:
            groups = [[index for _, index in outfit] for outfit, split in
                      zip(outfit_items, outfit_split) if split in triplet_splits]
            triplet_table, skipped_pairs = _tables.sample_complementary_triplets(
                groups, category, seed)
        extra = {"outfit_splits.csv": "outfit_id, split of every outfit"}
        fitb, compatibility = [], []
        for split in splits:
            path = root / version / f"fill_in_blank_{split}.json"
            if path.is_file():
                fitb += _read_fitb(path, references[split], item_ids, split)
            path = root / version / f"compatibility_{split}.txt"
            if path.is_file():
                compatibility += _read_compatibility(path, references[split], item_ids, split)
        if fitb:
            extra["fitb.json"] = "fill-in-the-blank questions as item ids; answer = true index"
        if compatibility:
            extra["compatibility.json"] = "outfit compatibility questions: label, item ids"
        dataset = FashionDataset(
            name=name or f"polyvore_outfits_{version}",
            users=Users(ids=np.zeros(0, str)),
            items=Items(ids=item_ids, category=category, attributes=attributes,
                        titles=np.array(fields["title"], dtype=str), image_paths=image_paths),
            outfits=Outfits(ids=np.array(outfit_ids, dtype=str),
                            user=np.full(len(outfit_ids), -1, np.int32), items=slot_items,
                            slots=slots),
            triplets=triplet_table,
            metadata={"source": "Polyvore Outfits (Vasileva et al. 2018)", "version": version,
                      "splits": list(splits), "extra_files": extra,
                      **({"triplets": {"splits": list(triplet_splits), "seed": seed}}
                         if triplets else {})})
        stats = {f"{s}_outfits": outfit_split.count(s) for s in splits}
        stats.update(fitb_questions=len(fitb), compatibility_questions=len(compatibility))
        skipped = {"triplet_pairs_without_negative": skipped_pairs} if triplets else {}
        _tables.save(dataset, staging, "polyvore_outfits", skipped, stats)
        write_csv(staging / "outfit_splits.csv",
                          {"outfit_id": outfit_ids, "split": outfit_split})
        if fitb:
            _tables.write_json(staging / "fitb.json", fitb)
        if compatibility:
            _tables.write_json(staging / "compatibility.json", compatibility)
    return dataset


def _read_categories(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    names = {}
    with open_binary(path) as handle:
        lines = handle.read().decode("utf-8").splitlines()
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row:
            continue
        if len(row) != 3:
            raise DataError(f"{path}, line {number}: expected category_id,name,semantic "
                            f"category, got {row!r}")
        names[row[0].strip()] = row[1].strip()
    return names


def _field(record: dict, field: str, path: Path, item_id: str) -> str:
    value = record.get(field)
    if value is None:
        return ""
    if not isinstance(value, (str, int)):
        raise DataError(f"{path}: item {item_id!r} field {field!r} should be a string, got "
                        f"{type(value).__name__}")
    return str(value)


def _read_outfits(path: Path, metadata: dict, meta_path: Path, items: _tables.IdIndex,
                  categories: dict[int, str], outfit_ids: list[str],
                  outfit_items: list[list[tuple[str, int]]], outfit_split: list[str],
                  split: str) -> dict[str, int]:
    """Appends the split's outfits; returns its ``<set_id>_<index>`` -> item index map."""
    outfits = load_json(path)
    if not isinstance(outfits, list):
        raise DataError(f"{path}: expected a list of outfits")
    references = {}
    for k, outfit in enumerate(outfits):
        where = f"{path}, outfit {k}"
        if not isinstance(outfit, dict) or not isinstance(outfit.get("set_id"), (str, int)) \
                or not isinstance(outfit.get("items"), list):
            raise DataError(f"{where}: expected {{'set_id': ..., 'items': [...]}}, got "
                            f"{outfit!r:.80}")
        set_id = str(outfit["set_id"])
        members = []
        entries = outfit["items"]
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("item_id"), (str, int)) \
                    or not isinstance(entry.get("index"), int):
                raise DataError(f"{where} (set_id {set_id}): item should be {{'item_id': ..., "
                                f"'index': int}}, got {entry!r:.80}")
        for entry in sorted(entries, key=lambda e: e["index"]):
            item_id = str(entry["item_id"])
            record = metadata.get(item_id)
            if not isinstance(record, dict) or not isinstance(record.get("semantic_category"), str):
                raise DataError(f"{where} (set_id {set_id}): item {item_id!r} has no "
                                f"semantic_category in {meta_path.name}")
            index = items.add(item_id)
            semantic = record["semantic_category"]
            categories[index] = SLOT_NAMES.get(semantic, semantic)
            references[f"{set_id}_{entry['index']}"] = index
            members.append((categories[index], index))
        outfit_ids.append(set_id)
        outfit_items.append(members)
        outfit_split.append(split)
    return references


def _resolve(reference: object, references: dict[str, int], item_ids: np.ndarray,
             where: str) -> str:
    index = references.get(reference) if isinstance(reference, str) else None
    if index is None:
        raise DataError(f"{where}: unknown item {reference!r} (expected <set_id>_<index> of an "
                        "outfit of the same split)")
    return str(item_ids[index])


def _read_fitb(path: Path, references: dict[str, int], item_ids: np.ndarray,
               split: str) -> list[dict]:
    out = []
    for where, question in iter_fitb_questions(path):
        asked = [_resolve(r, references, item_ids, where) for r in question["question"]]
        answers = [_resolve(r, references, item_ids, where) for r in question["answers"]]
        outfit = str(question["question"][0]).split("_")[0] if question["question"] else None
        truth = [i for i, r in enumerate(question["answers"]) if r.split("_")[0] == outfit]
        if len(truth) != 1:
            raise DataError(f"{where}: expected exactly one answer from outfit {outfit}, found "
                            f"{len(truth)}")
        out.append({"split": split, "question": asked, "answers": answers, "answer": truth[0],
                    "blank_position": question.get("blank_position")})
    return out


def _read_compatibility(path: Path, references: dict[str, int], item_ids: np.ndarray,
                        split: str) -> list[dict]:
    out = []
    for number, line in iter_lines(path):
        values = line.split()
        if len(values) < 2 or values[0] not in ("0", "1"):
            raise DataError(f"{path}, line {number}: expected '<0|1> <set_id>_<index> ...', got "
                            f"{line[:80]!r}")
        where = f"{path}, line {number}"
        out.append({"split": split, "label": int(values[0]),
                    "items": [_resolve(r, references, item_ids, where) for r in values[1:]]})
    return out
