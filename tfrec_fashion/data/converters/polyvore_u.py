"""Polyvore-U (FHN / PAN) -> the project's dataset layout: users, items, outfits by slot.

Public format (Lu, Hu, Jiang, Chen & Zeng, "Learning Binary Code for Personalized Fashion
Recommendation", CVPR 2019; released with github.com/lzcn/Fashion-Hash-Net, described in its
``data/README.md``; used by PAN, the project's paper 001). The release folder ``polyvore/``::

    images/291x291/<name>.jpg      item images, named as in the image lists
    tuples_630/                    Polyvore-630; likewise tuples_53 (fixed length) and
                                   tuples_519, tuples_32 (variable length)
        image_list_top             one image file name per line: line k (0-based) is top k
        image_list_bottom          likewise for bottoms
        image_list_shoe            likewise for shoes
        tuples_train_posi          CSV with header; one positive outfit per row:
        tuples_val_posi              fixed length:    user,top,bottom,shoe
        tuples_test_posi             variable length: user,top,top,bottom,shoe
                                     (-1 in the second top column: the outfit has one top)
        tuples_{train,val,test}_nega        negative outfits, same format, randomly mixed
        tuples_{train,val,test}_nega_hard   negative outfits, positives of other users
        fill_in_blank_test         CSV with header; per row several outfits "user,top,bottom,
                                   shoe,user,top,..." differing in one item; the first is true

Every value is an integer: the user index, then indices into the image lists of the columns'
categories. Only the image lists and ``tuples_train_posi`` are required; the other files are
converted when present (``metadata.files`` lists what was read).

Output:

- users "0".."n-1" (n = largest user index + 1); items: every line of the three image lists,
  id ``<category>_<index>`` (e.g. ``top_19000``, exactly how the tuples address items),
  category top / bottom / shoes, attribute ``image_name``, image ``images/<name>`` (copied or
  symlinked from ``image_dir``, default ``<root>/images/291x291``; ``images="none"`` skips).
- outfits: the positive outfits of every split, id ``<split>_<row>`` (row = 0-based data row
  of its file), slots top, bottom, shoes (variable length: top, top_2, bottom, shoes).
- ``outfit_splits.csv``: outfit_id, split (train / val / test).
- ``negative_outfits.csv``: outfit_id (``<split>_nega[_hard]_<row>``), split, kind (random /
  hard), user_id, then the same slot columns as outfits.csv.
- ``fitb.json``: ``{"slots": [...], "questions": [{"split": "test", "user_id": ..., "candidates":
  [[item ids in slot order], ...], "answer": 0}]}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfrec_fashion.data.converters import _tables
from tfrec_fashion.data.converters._io import (
    PathLike,
    iter_lines,
    require_file,
    split_sources,
)
from tfrec_fashion.data.dataset import FashionDataset, Items, Outfits, Users, write_csv
from tfrec_fashion.errors import DataError, MissingDataError

CATEGORIES = {"top": "top", "bottom": "bottom", "shoe": "shoes"}  # list name -> our category
SPLITS = ("train", "val", "test")


def convert(*paths: PathLike, output_dir: PathLike | None = None, subset: str | None = None,
            images: str = "copy", image_dir: PathLike | None = None,
            name: str | None = None) -> FashionDataset:
    """Converts one Polyvore-U subset and saves the dataset.

    Args:
        paths: the release folder ``polyvore/`` (or one ``tuples_<n>`` folder inside it), then
            the output folder (unless ``output_dir`` is given).
        subset: which ``tuples_<n>`` folder to read when ``paths`` names the release folder and
            it holds several.
        images: "copy", "symlink" or "none".
        image_dir: where the images are; default ``<release>/images/291x291``.
        name: dataset name; default ``polyvore_u_<n>``.

    Raises:
        DataError: a malformed line, a bad header, an index outside its image list or a -1
            outside a repeated column (each naming the file and line), an image list naming
            files absent from ``image_dir`` or not decodable (naming the first, relative to the
            release folder, and counting them), non-empty output folder.
        MissingDataError: a required file or the image folder is missing.
    """
    _tables.check_image_mode(images)
    sources, output_dir = split_sources(paths, output_dir, "polyvore_u")
    if len(sources) != 1 or not sources[0].is_dir():
        raise ValueError(f"polyvore_u: expected one folder, got {[str(p) for p in sources]}")
    root, tuples_dir = _locate(sources[0], subset)
    with _tables.staging(output_dir) as staging:
        lists = {c: _read_image_list(require_file(tuples_dir / f"image_list_{c}",
                                                  f"the Polyvore-U {c} image list"))
                 for c in CATEGORIES}
        offsets = np.cumsum([0] + [len(v) for v in lists.values()])
        offset = dict(zip(CATEGORIES, offsets[:-1].tolist()))
        item_ids = np.array([f"{c}_{k}" for c, names in lists.items() for k in range(len(names))])
        files = [f"image_list_{c}" for c in CATEGORIES]
        reader = _TupleReader(lists, offset)
        positives: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
        negatives = []
        for split in SPLITS:
            path = tuples_dir / f"tuples_{split}_posi"
            if split == "train":
                require_file(path, "Polyvore-U positive training outfits")
            if path.is_file():
                files.append(path.name)
                positives[split] = reader.read(path)
            for kind, suffix in (("random", "nega"), ("hard", "nega_hard")):
                path = tuples_dir / f"tuples_{split}_{suffix}"
                if path.is_file():
                    files.append(path.name)
                    negatives.append((split, kind, suffix, *reader.read(path)))
        fitb_path = tuples_dir / "fill_in_blank_test"
        fitb = reader.read_fitb(fitb_path) if fitb_path.is_file() else None
        if fitb is not None:
            files.append(fitb_path.name)
        slots = reader.slots
        users = np.array([str(u) for u in range(reader.max_user + 1)])
        outfit_ids = np.concatenate([[f"{s}_{r}" for r in range(len(p[1]))]
                                     for s, p in positives.items()])
        image_names = np.array([n for names in lists.values() for n in names], dtype=str)
        image_paths = None
        if images != "none":
            source_dir = Path(image_dir) if image_dir else root / "images" / "291x291"
            if not source_dir.is_dir():
                raise MissingDataError(f"image folder {source_dir} does not exist; pass "
                                       "image_dir=... or images='none'")
            _check_images(source_dir, root, lists)
            image_paths = np.array([f"images/{n}" for n in image_names])
            for name_, relative in zip(image_names, image_paths):
                _tables.place_image(source_dir / name_, staging, relative, images)
        dataset = FashionDataset(
            name=name or f"polyvore_u_{tuples_dir.name.removeprefix('tuples_')}",
            users=Users(ids=users),
            items=Items(ids=item_ids,
                        category=np.array([CATEGORIES[c] for c, names in lists.items()
                                           for _ in names], dtype=str),
                        attributes={"image_name": image_names}, image_paths=image_paths),
            outfits=Outfits(ids=outfit_ids.astype(str),
                            user=np.concatenate([p[1] for p in positives.values()]),
                            items=np.concatenate([p[2] for p in positives.values()]),
                            slots=slots),
            metadata={"source": "Polyvore-U (Lu et al. 2019, Fashion-Hash-Net release)",
                      "subset": tuples_dir.name, "files": files,
                      "extra_files": _extra_files(bool(negatives), fitb is not None)})
        stats = {f"{s}_positive_outfits": len(p[1]) for s, p in positives.items()}
        _tables.save(dataset, staging, "polyvore_u", {}, stats)
        write_csv(staging / "outfit_splits.csv", {
            "outfit_id": outfit_ids, "split": [s for s, p in positives.items() for _ in p[1]]})
        if negatives:
            _write_negatives(staging / "negative_outfits.csv", negatives, slots, users, item_ids)
        if fitb is not None:
            _tables.write_json(staging / "fitb.json", {
                "slots": list(slots),
                "questions": [{"split": "test", "user_id": users[u],
                               "candidates": [[item_ids[i] if i >= 0 else "" for i in c]
                                              for c in candidates], "answer": 0}
                              for u, candidates in fitb]})
    return dataset


def _locate(folder: Path, subset: str | None) -> tuple[Path, Path]:
    if (folder / "image_list_top").is_file():
        return folder.parent, folder
    if subset is not None:
        if not (folder / subset).is_dir():
            raise MissingDataError(f"{folder / subset} does not exist")
        return folder, folder / subset
    found = sorted(p.name for p in folder.glob("tuples_*") if p.is_dir())
    if len(found) != 1:
        raise ValueError(f"polyvore_u: {folder} holds {found or 'no tuples_<n> folders'}; "
                         "pass subset='tuples_630' (or another) or the tuples folder itself")
    return folder, folder / found[0]


def _read_image_list(path: Path) -> list[str]:
    names = []
    for number, line in iter_lines(path):
        name = line.strip()
        if "/" in name or name in (".", ".."):
            raise DataError(f"{path}, line {number}: {name!r} is not an image file name")
        if number != len(names) + 1:
            raise DataError(f"{path}, line {len(names) + 1}: blank line; line k must name item "
                            "k - 1")
        names.append(name)
    return names


def _check_images(source_dir: Path, root: Path, lists: dict[str, list[str]]) -> None:
    """Raises DataError on the first image file of the lists that is absent or not decodable.

    Every image is decoded (JPEGs in draft mode, at 1/8 scale: the whole entropy stream is still
    read, so a truncated file is caught) before anything is copied, so a bad release fails in
    seconds with every absent file counted rather than after copying part of it.
    """
    from PIL import Image, UnidentifiedImageError

    def shown(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    listed = [(source_dir / name, c, line) for c, names in lists.items()
              for line, name in enumerate(names, start=1)]
    missing = [entry for entry in listed if not entry[0].is_file()]
    if missing:
        path, category, line = missing[0]
        raise DataError(f"{root}: {len(missing)} of {len(listed)} images named in the image lists "
                        f"are missing, first {shown(path)} (image_list_{category}, line {line}); "
                        "restore them or pass images='none'")
    for path, category, line in listed:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (1, 1))
                image.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise DataError(f"{root}: image {shown(path)} (image_list_{category}, line {line}) is "
                            f"corrupt or not an image ({error})") from None


class _TupleReader:
    """Parses tuple files, checking every header against the first one (they share slots)."""

    def __init__(self, lists: dict[str, list[str]], offset: dict[str, int]):
        self.lists, self.offset = lists, offset
        self.header: list[str] | None = None
        self.slots: tuple[str, ...] = ()
        self.max_user = -1

    def _check_header(self, columns: list[str], path: Path, number: int) -> None:
        if columns[0] != "user" or len(columns) < 2 or set(columns[1:]) - set(self.lists):
            raise DataError(f"{path}, line {number}: header should be 'user' then categories among "
                            f"{list(self.lists)}, got {','.join(columns)!r}")
        if self.header is None:
            self.header = columns
            seen: dict[str, int] = {}
            slots = []
            for c in columns[1:]:
                seen[c] = seen.get(c, 0) + 1
                slots.append(CATEGORIES[c] if seen[c] == 1 else f"{CATEGORIES[c]}_{seen[c]}")
            self.slots = tuple(slots)
        elif columns != self.header:
            raise DataError(f"{path}, line {number}: header {','.join(columns)!r} differs from "
                            f"{','.join(self.header)!r} of the other tuple files")

    def _outfit(self, values: list[str], path: Path, number: int) -> tuple[int, list[int]]:
        header = self.header
        try:
            numbers = [int(v) for v in values]
        except ValueError:
            raise DataError(f"{path}, line {number}: values should be integers, got "
                            f"{','.join(values)!r}") from None
        user, items = numbers[0], []
        if user < 0:
            raise DataError(f"{path}, line {number}: user index {user} is negative")
        self.max_user = max(self.max_user, user)
        for column, (category, index) in enumerate(zip(header[1:], numbers[1:]), start=2):
            repeated = category in header[1:column - 1]
            if index == -1 and repeated:
                items.append(-1)
            elif not 0 <= index < len(self.lists[category]):
                raise DataError(f"{path}, line {number}, column {column}: {category} index {index} "
                                f"is outside [0, {len(self.lists[category])}) of image_list_"
                                f"{category}" + ("" if repeated else " (-1 is allowed only in a "
                                                 "repeated column)"))
            else:
                items.append(self.offset[category] + index)
        return user, items

    def read(self, path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Returns (row labels, user index [n], item index [n, n_slots]) of a tuple file."""
        users, outfits = [], []
        header_seen = False
        for number, line in iter_lines(path):
            values = [v.strip() for v in line.split(",")]
            if not header_seen:
                self._check_header(values, path, number)
                header_seen = True
                continue
            if len(values) != len(self.header):
                raise DataError(f"{path}, line {number}: {len(values)} values, the header has "
                                f"{len(self.header)}")
            user, items = self._outfit(values, path, number)
            users.append(user)
            outfits.append(items)
        if not header_seen:
            raise DataError(f"{path}: empty file, expected a header line")
        width = len(self.header) - 1
        return ([str(r) for r in range(len(users))], np.array(users, np.int32),
                np.array(outfits, np.int32).reshape(-1, width))

    def read_fitb(self, path: Path) -> list[tuple[int, list[list[int]]]]:
        questions = []
        header_seen = False
        width = len(self.header)
        for number, line in iter_lines(path):
            values = [v.strip() for v in line.split(",")]
            if not header_seen:
                if len(values) % width or values != self.header * (len(values) // width):
                    raise DataError(f"{path}, line {number}: header should repeat "
                                    f"{','.join(self.header)!r}, got {line[:80]!r}")
                header_seen = True
                continue
            if len(values) % width or len(values) < 2 * width:
                raise DataError(f"{path}, line {number}: {len(values)} values, expected at least "
                                f"two outfits of {width} values")
            parsed = [self._outfit(values[k:k + width], path, number)
                      for k in range(0, len(values), width)]
            if len({user for user, _ in parsed}) != 1:
                raise DataError(f"{path}, line {number}: candidates belong to different users")
            questions.append((parsed[0][0], [items for _, items in parsed]))
        return questions


def _write_negatives(path: Path, negatives: list, slots: tuple[str, ...], users: np.ndarray,
                     item_ids: np.ndarray) -> None:
    columns: dict[str, list] = {"outfit_id": [], "split": [], "kind": [], "user_id": []}
    columns.update({slot: [] for slot in slots})
    for split, kind, suffix, rows, user, items in negatives:
        columns["outfit_id"] += [f"{split}_{suffix}_{r}" for r in rows]
        columns["split"] += [split] * len(rows)
        columns["kind"] += [kind] * len(rows)
        columns["user_id"] += [users[u] for u in user]
        for slot, column in zip(slots, items.T):
            columns[slot] += [item_ids[i] if i >= 0 else "" for i in column]
    write_csv(path, columns)


def _extra_files(negatives: bool, fitb: bool) -> dict[str, str]:
    files = {"outfit_splits.csv": "outfit_id, split (train / val / test) of every outfit"}
    if negatives:
        files["negative_outfits.csv"] = ("outfit_id, split, kind (random / hard), user_id and "
                                         "the outfits.csv slots of each released negative outfit")
    if fitb:
        files["fitb.json"] = "fill-in-the-blank questions: candidate outfits, answer 0 is true"
    return files
