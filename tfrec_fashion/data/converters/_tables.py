"""Building the project's tables from parsed records: id indices, outfit slots, triplets, output.

Shared by every converter so that the same question always gets the same answer: how several
items of one category fill outfit slots, how complete-the-look triplets are sampled, where extra
tables go, and how the output folder is written (all or nothing).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfrec_fashion.data.converters._io import log_skipped, logger
from tfrec_fashion.data.dataset import FashionDataset, Triplets
from tfrec_fashion.errors import DataError, MissingDataError

IMAGE_MODES = ("copy", "symlink", "none")


class IdIndex:
    """Assigns consecutive indices to string ids in order of first appearance."""

    def __init__(self, ids: Sequence[str] = ()):
        self._index: dict[str, int] = {}
        for value in ids:
            self.add(value)

    def add(self, value: str) -> int:
        index = self._index.get(value)
        if index is None:
            index = self._index[value] = len(self._index)
        return index

    def get(self, value: str) -> int | None:
        return self._index.get(value)

    def __contains__(self, value: str) -> bool:
        return value in self._index

    def __len__(self) -> int:
        return len(self._index)

    @property
    def ids(self) -> np.ndarray:
        return np.array(list(self._index), dtype=str) if self._index else np.zeros(0, str)


def reindex(keep: np.ndarray) -> np.ndarray:
    """Maps old row indices to new ones after keeping the rows where ``keep``; -1 where dropped."""
    new = np.full(len(keep), -1, np.int64)
    new[keep] = np.arange(int(np.count_nonzero(keep)))
    return new


def restrict_to_items(keep_items: np.ndarray, user: np.ndarray, item: np.ndarray,
                      n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drops items (and then users left without any row) from a user-item relation.

    Returns:
        rows: bool [n_rows], the rows kept; new_user, new_item: their re-indexed user and item
        indices; keep_users: bool [n_users], the users kept.
    """
    rows = keep_items[item]
    keep_users = np.zeros(n_users, bool)
    keep_users[user[rows]] = True
    return (rows, reindex(keep_users)[user[rows]].astype(np.int32),
            reindex(keep_items)[item[rows]].astype(np.int32), keep_users)


def slot_matrix(outfits: Sequence[Sequence[tuple[str, int]]],
                leading: Sequence[str] = ("top", "bottom", "shoes")) -> tuple[tuple[str, ...], np.ndarray]:
    """Lays outfits out as one column per slot.

    Args:
        outfits: per outfit, its (slot name, item index) pairs in file order.
        leading: slots that always come first (and always exist, possibly empty).

    Returns:
        slots: the column names: ``leading``, then other slot names sorted. A slot that holds
            up to k items of one outfit gets k columns ``name, name_2, ..., name_k``, filled in
            file order, so no item is ever dropped.
        items: int32 [n_outfits, n_slots], -1 for an empty cell.
    """
    most: dict[str, int] = {name: 1 for name in leading}
    for outfit in outfits:
        counts: dict[str, int] = defaultdict(int)
        for name, _ in outfit:
            counts[name] += 1
        for name, count in counts.items():
            most[name] = max(most.get(name, 0), count)
    bases = list(leading) + sorted(set(most) - set(leading))
    slots = tuple(name if k == 1 else f"{name}_{k}" for name in bases for k in range(1, most[name] + 1))
    column = {slot: c for c, slot in enumerate(slots)}
    items = np.full((len(outfits), len(slots)), -1, np.int32)
    for row, outfit in enumerate(outfits):
        seen: dict[str, int] = defaultdict(int)
        for name, index in outfit:
            seen[name] += 1
            items[row, column[name if seen[name] == 1 else f"{name}_{seen[name]}"]] = index
    return slots, items


def sample_complementary_triplets(groups: Sequence[Sequence[int]], category: np.ndarray,
                                  seed: int, both_directions: bool = False) -> tuple[Triplets, int]:
    """Samples complete-the-look triplets (Li et al. 2020, "Bootstrapping Complete the Look").

    For each group (outfit or scene) and each pair of its items from different categories, the
    earlier item (file order) is the anchor and the later the positive (both orders with
    ``both_directions``); the negative is drawn uniformly from the items of the positive's
    category that are not in the anchor's group. This mirrors ``scripts/sample_triplets.py`` of
    github.com/eileenforwhat/complete-the-look-dataset, without its shuffle, so the result depends
    only on the data and ``seed``.

    Returns:
        the triplets, and the number of (anchor, positive) pairs skipped because no item of the
        positive's category lies outside the group.
    """
    rng = np.random.default_rng(seed)
    by_category: dict[str, list[int]] = defaultdict(list)
    for index in sorted({i for group in groups for i in group}):
        by_category[str(category[index])].append(index)
    pools = {name: np.array(items) for name, items in by_category.items()}
    anchors: list[int] = []
    positives: list[int] = []
    negatives: list[int] = []
    skipped = 0
    for group in groups:
        members = set(group)
        order = list(dict.fromkeys(group))
        pairs = [(a, p) for i, a in enumerate(order) for p in order[i + 1:]
                 if category[a] != category[p]]
        if both_directions:
            pairs += [(p, a) for a, p in pairs]
        for anchor, positive in pairs:
            pool = pools[str(category[positive])]
            inside = sum(1 for item in members if category[item] == category[positive])
            if len(pool) <= inside:
                skipped += 1
                continue
            while True:  # rejection sampling: at least one candidate lies outside the group
                negative = int(pool[rng.integers(len(pool))])
                if negative not in members:
                    break
            anchors.append(anchor)
            positives.append(positive)
            negatives.append(negative)
    return Triplets(*(np.array(v, np.int32) for v in (anchors, positives, negatives))), skipped


def check_image_mode(images: str) -> None:
    if images not in IMAGE_MODES:
        raise ValueError(f"`images` must be one of {IMAGE_MODES}. Received: images={images!r}")


def place_image(source: Path, dataset_dir: Path, relative: str, mode: str) -> None:
    """Copies (or symlinks) an image into the dataset folder under ``relative``."""
    if not source.is_file():
        raise MissingDataError(f"image {source} does not exist")
    target = dataset_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(source.resolve(), target)
    else:
        shutil.copyfile(source, target)


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1))


@contextlib.contextmanager
def staging(output_dir: Path) -> Iterator[Path]:
    """Yields a temporary folder beside ``output_dir`` that becomes ``output_dir`` on success.

    A failed conversion leaves nothing behind; a finished one appears at once. ``output_dir``
    must not exist or be empty, so stale tables of an earlier conversion can never mix in.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise DataError(f"output folder {output_dir} exists and is not empty; converters write "
                        "into a new or empty folder (remove it or choose another)")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        yield temporary
        if output_dir.exists():
            output_dir.rmdir()
        temporary.rename(output_dir)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def save(dataset: FashionDataset, directory: Path, converter: str, skipped: dict[str, int],
         stats: dict[str, int] | None = None) -> FashionDataset:
    """Records skip counts (logged as warnings) and other counts in the metadata, then saves
    the dataset into ``directory``."""
    dataset.metadata.setdefault("converter", converter)
    dataset.metadata["skipped"] = {k: int(v) for k, v in skipped.items()}
    if stats:
        dataset.metadata["stats"] = {k: int(v) for k, v in stats.items()}
    log_skipped(converter, skipped)
    dataset.save(directory)
    logger.info("%s: converted %s", converter, dataset.counts())
    return dataset

