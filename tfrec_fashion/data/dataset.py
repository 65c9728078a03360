"""The project's dataset layout: one in-memory form and one on-disk form for every data source.

The planted synthetic world, the Fashion-MNIST world and every public-format converter produce a
``FashionDataset``; every model's pipeline consumes one. Entities follow SPEC.md section 1.

Ids are strings on disk and in ``ids`` arrays; every relation stores integer *indices* into
``users.ids`` / ``items.ids`` so pipelines never look strings up.

On disk (``FashionDataset.save`` / ``FashionDataset.load``)::

    <dir>/dataset.json        name, format_version, source, counts, metadata
    <dir>/users.csv           user_id, <side feature columns>
    <dir>/items.csv           item_id, category, <attribute columns>, title, image
    <dir>/interactions.csv    user_id, item_id, timestamp          (implicit feedback)
    <dir>/ratings.csv         user_id, item_id, value[, timestamp] (explicit, e.g. +1 / -1, 1..5)
    <dir>/pair_ratings.csv    user_id, item_a, item_b, label       (label +1 / -1)
    <dir>/expert_pairs.csv    item_a, item_b, label                (no customer; label +1 / -1)
    <dir>/outfits.csv         outfit_id, user_id, <one column per slot> (empty cell = no item)
    <dir>/triplets.csv        anchor, positive, negative           (item ids)
    <dir>/item_features.npy   float32 [n_items, d], rows in items.csv order (optional)
    <dir>/images/...          image files named by items.csv's ``image`` column (optional)
    <dir>/truth.npz           ground-truth arrays of a planted world (optional)

``dataset.json``'s ``metadata`` is free-form, but ``rating_range: [low, high]`` (e.g. ``[0.5, 5]``
for half stars) is checked against every rating and read by the rating models (clipping,
scaling) and by ``min_rating`` (``interactions_from_ratings``). Timestamps are integers (Unix
seconds in real data); the implicit split holds out each user's latest interactions.

Tables that a source lacks are simply absent. Loading checks referential integrity, unique ids,
label and rating ranges, and that every named image exists, and names the file and row of any
problem.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from tfrec_fashion.data.tabular import as_float, lines_of
from tfrec_fashion.errors import DataError, MissingDataError

FORMAT_VERSION = 1
_ITEM_FIXED_COLUMNS = ("item_id", "category", "title", "image")


@dataclasses.dataclass
class Users:
    """Users. ``ids``: str [n_users]; ``features``: name -> array [n_users] of side features."""

    ids: np.ndarray
    features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class Items:
    """Items of the catalogue.

    Args:
        ids: str [n_items], unique.
        category: str [n_items], e.g. "top", "bottom", "shoes".
        attributes: name -> array [n_items] (colour, brand, pattern, sleeve length, ...).
        titles: str [n_items] or None.
        images: uint8 [n_items, height, width, 3] held in memory, or None.
        image_paths: str [n_items], paths relative to the dataset folder ("" = no image), or None.
        features: float32 [n_items, d] pretrained visual features, or None.
    """

    ids: np.ndarray
    category: np.ndarray
    attributes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    titles: np.ndarray | None = None
    images: np.ndarray | None = None
    image_paths: np.ndarray | None = None
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class Interactions:
    """Implicit feedback: int32 ``user`` and ``item`` indices and int64 ``timestamp``, each [n]."""

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


@dataclasses.dataclass
class Ratings:
    """Explicit ratings: int32 ``user`` / ``item`` indices and float32 ``value``, each [n], and
    optionally when each was given, int64 ``timestamp`` [n]."""

    user: np.ndarray
    item: np.ndarray
    value: np.ndarray
    timestamp: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user)


@dataclasses.dataclass
class PairRatings:
    """A user's vote on a pair (PSA-Net): int32 ``user``, ``item_a``, ``item_b``; int8 ``label`` +-1."""

    user: np.ndarray
    item_a: np.ndarray
    item_b: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


@dataclasses.dataclass
class ExpertPairs:
    """Pairs labelled by a fashion expert, for no customer (PSA-Net's "expert data" ablation):
    int32 ``item_a``, ``item_b`` and int8 ``label`` +-1, each [n]."""

    item_a: np.ndarray
    item_b: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.item_a)


@dataclasses.dataclass
class Outfits:
    """Outfits: ``ids`` str [n]; ``user`` int32 [n] (-1 = no user); ``items`` int32 [n, n_slots]
    (-1 = empty slot); ``slots`` names the columns, e.g. ("top", "bottom", "shoes")."""

    ids: np.ndarray
    user: np.ndarray
    items: np.ndarray
    slots: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class Triplets:
    """Complete-the-look triplets of int32 item indices, each [n]."""

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray

    def __len__(self) -> int:
        return len(self.anchor)


@dataclasses.dataclass
class FashionDataset:
    """Every table a model may need; absent tables are None.

    ``metadata`` is free-form JSON (source, licence, image size, rating range, ...); ``truth``
    holds a planted world's ground-truth arrays (e.g. "user_item_score" [n_users, n_items]);
    ``expert_pairs`` are pair labels of no customer (last, so positional construction holds).
    """

    name: str
    users: Users
    items: Items
    interactions: Interactions | None = None
    ratings: Ratings | None = None
    pair_ratings: PairRatings | None = None
    outfits: Outfits | None = None
    triplets: Triplets | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    truth: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    expert_pairs: ExpertPairs | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """Returns the number of rows of every present table."""
        counts = {"users": self.n_users, "items": self.n_items}
        for name in ("interactions", "ratings", "pair_ratings", "expert_pairs", "outfits",
                     "triplets"):
            table = getattr(self, name)
            if table is not None:
                counts[name] = len(table)
        return counts

    # ------------------------------------------------------------------ validation
    def validate(self, source: str = "dataset") -> None:
        """Checks ids, index ranges, labels and array lengths; raises DataError naming the problem."""
        _check_unique(self.users.ids, f"{source}: users")
        _check_unique(self.items.ids, f"{source}: items")
        n_items = self.n_items
        for name, array in [("category", self.items.category), *self.items.attributes.items(),
                            ("titles", self.items.titles), ("image_paths", self.items.image_paths),
                            ("images", self.items.images), ("features", self.items.features)]:
            if array is not None and len(array) != n_items:
                raise DataError(f"{source}: items.{name} has {len(array)} rows, items has {n_items}")
        for name, array in self.users.features.items():
            if len(array) != self.n_users:
                raise DataError(f"{source}: users.{name} has {len(array)} rows, users has {self.n_users}")
        for table_name, user_fields, item_fields in _RELATIONS:
            table = getattr(self, table_name)
            if table is None:
                continue
            lengths = {f.name: len(getattr(table, f.name)) for f in dataclasses.fields(table)
                       if isinstance(getattr(table, f.name), np.ndarray)}
            if len(set(lengths.values())) > 1:
                raise DataError(f"{source}: {table_name} columns differ in length: {lengths}")
            for field in user_fields:
                _check_range(getattr(table, field), self.n_users, f"{source}: {table_name}.{field}",
                             allow_missing=table_name == "outfits")
            for field in item_fields:
                _check_range(getattr(table, field), n_items, f"{source}: {table_name}.{field}",
                             allow_missing=table_name == "outfits")
        for table_name in ("pair_ratings", "expert_pairs"):
            table = getattr(self, table_name)
            bad = np.zeros(0, bool) if table is None else ~np.isin(table.label, (-1, 1))
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(f"{source}: {table_name} row {row} has label "
                                f"{table.label[row].item()!r}; labels must be +1 or -1")
        if self.ratings is not None and "rating_range" in self.metadata:
            low, high = self.metadata["rating_range"]
            value = self.ratings.value
            bad = (value < low) | (value > high) | ~np.isfinite(value)
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(f"{source}: ratings row {row} has value {value[row].item()!r}, "
                                f"outside rating_range [{low}, {high}]")

    # ------------------------------------------------------------------ disk format
    def save(self, directory: str | Path) -> Path:
        """Writes the dataset in the on-disk layout (see module docstring) and returns the folder.

        In-memory images are written as PNG files under ``images/``.
        """
        from PIL import Image

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        items = self.items
        image_paths = items.image_paths
        if items.images is not None:
            (directory / "images").mkdir(exist_ok=True)
            image_paths = np.array([f"images/{i}.png" for i in range(self.n_items)])
            for path, image in zip(image_paths, items.images):
                Image.fromarray(image).save(directory / path)
        user_ids, item_ids = self.users.ids, items.ids
        write_csv(directory / "users.csv", {"user_id": user_ids, **self.users.features})
        item_columns: dict[str, np.ndarray] = {"item_id": item_ids, "category": items.category,
                                               **items.attributes}
        if items.titles is not None:
            item_columns["title"] = items.titles
        if image_paths is not None:
            item_columns["image"] = image_paths
        write_csv(directory / "items.csv", item_columns)
        if items.features is not None:
            np.save(directory / "item_features.npy", items.features.astype(np.float32))
        if self.interactions is not None:
            t = self.interactions
            write_csv(directory / "interactions.csv", {
                "user_id": user_ids[t.user], "item_id": item_ids[t.item], "timestamp": t.timestamp})
        if self.ratings is not None:
            t = self.ratings
            columns = {"user_id": user_ids[t.user], "item_id": item_ids[t.item], "value": t.value}
            if t.timestamp is not None:
                columns["timestamp"] = t.timestamp
            write_csv(directory / "ratings.csv", columns)
        if self.pair_ratings is not None:
            t = self.pair_ratings
            write_csv(directory / "pair_ratings.csv", {
                "user_id": user_ids[t.user], "item_a": item_ids[t.item_a],
                "item_b": item_ids[t.item_b], "label": t.label})
        if self.expert_pairs is not None:
            t = self.expert_pairs
            write_csv(directory / "expert_pairs.csv", {
                "item_a": item_ids[t.item_a], "item_b": item_ids[t.item_b], "label": t.label})
        if self.outfits is not None:
            t = self.outfits
            columns = {"outfit_id": t.ids, "user_id": _ids_or_empty(user_ids, t.user)}
            for slot, column in zip(t.slots, t.items.T):
                columns[slot] = _ids_or_empty(item_ids, column)
            write_csv(directory / "outfits.csv", columns)
        if self.triplets is not None:
            t = self.triplets
            write_csv(directory / "triplets.csv", {
                "anchor": item_ids[t.anchor], "positive": item_ids[t.positive],
                "negative": item_ids[t.negative]})
        if self.truth:
            np.savez_compressed(directory / "truth.npz", **self.truth)
        (directory / "dataset.json").write_text(json.dumps({
            "name": self.name, "format_version": FORMAT_VERSION, "counts": self.counts(),
            "metadata": self.metadata}, indent=2, default=_json_default))
        return directory

    @classmethod
    def load(cls, directory: str | Path, load_images: bool = False) -> FashionDataset:
        """Reads a dataset written by ``save`` or by a converter.

        Args:
            directory: the dataset folder.
            load_images: decode every image into ``items.images`` (all must share one size);
                otherwise only check that each named image file exists.

        Raises:
            MissingDataError: no ``dataset.json`` in ``directory``.
            DataError: a table names an unknown id, a duplicate id, a bad label, a missing image...
        """
        directory = Path(directory)
        manifest_path = directory / "dataset.json"
        if not manifest_path.is_file():
            raise MissingDataError(
                f"{directory} is not a tfrec_fashion dataset (no dataset.json). Create one with "
                "`tfrec-fashion data synth` or `tfrec-fashion data convert`.")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{manifest_path}: not valid JSON ({error})") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{manifest_path}: format_version {manifest.get('format_version')!r}, "
                            f"this library reads {FORMAT_VERSION}")

        user_columns = _read_csv(directory / "users.csv", required=("user_id",))
        users = Users(ids=user_columns.pop("user_id"),
                      features={k: _numeric_or_str(v) for k, v in user_columns.items()})
        item_columns = _read_csv(directory / "items.csv", required=("item_id", "category"))
        items = Items(
            ids=item_columns["item_id"], category=item_columns["category"],
            attributes={k: _numeric_or_str(v) for k, v in item_columns.items()
                        if k not in _ITEM_FIXED_COLUMNS},
            titles=item_columns.get("title"), image_paths=item_columns.get("image"))
        features_path = directory / "item_features.npy"
        if features_path.is_file():
            items.features = np.load(features_path)
        if items.image_paths is not None:
            _check_images_exist(directory, items.image_paths)
            if load_images:
                from tfrec_fashion.data.images import read_image

                items.images = np.stack([read_image(directory / p) for p in items.image_paths])

        _check_unique(users.ids, str(directory / "users.csv"))
        _check_unique(items.ids, str(directory / "items.csv"))
        user_index = _Index(users.ids, "user_id")
        item_index = _Index(items.ids, "item_id")
        tables: dict[str, Any] = {}
        path = directory / "interactions.csv"
        if path.is_file():
            c = _read_csv(path, required=("user_id", "item_id", "timestamp"))
            tables["interactions"] = Interactions(
                user=user_index(c["user_id"], path), item=item_index(c["item_id"], path),
                timestamp=_as_number(c["timestamp"], np.int64, path, "timestamp"))
        path = directory / "ratings.csv"
        if path.is_file():
            c = _read_csv(path, required=("user_id", "item_id", "value"))
            tables["ratings"] = Ratings(
                user=user_index(c["user_id"], path), item=item_index(c["item_id"], path),
                value=_as_number(c["value"], np.float32, path, "value"),
                timestamp=_as_number(c["timestamp"], np.int64, path, "timestamp")
                if "timestamp" in c else None)
        path = directory / "pair_ratings.csv"
        if path.is_file():
            c = _read_csv(path, required=("user_id", "item_a", "item_b", "label"))
            tables["pair_ratings"] = PairRatings(user=user_index(c["user_id"], path),
                                                 **_labelled_pairs(c, item_index, path))
        path = directory / "expert_pairs.csv"
        if path.is_file():
            c = _read_csv(path, required=("item_a", "item_b", "label"))
            tables["expert_pairs"] = ExpertPairs(**_labelled_pairs(c, item_index, path))
        path = directory / "outfits.csv"
        if path.is_file():
            c = _read_csv(path, required=("outfit_id", "user_id"))
            slots = tuple(k for k in c if k not in ("outfit_id", "user_id"))
            tables["outfits"] = Outfits(
                ids=c["outfit_id"], user=user_index(c["user_id"], path, allow_empty=True),
                items=np.stack([item_index(c[s], path, allow_empty=True) for s in slots], axis=1)
                if slots else np.zeros((len(c["outfit_id"]), 0), np.int32),
                slots=slots)
        path = directory / "triplets.csv"
        if path.is_file():
            c = _read_csv(path, required=("anchor", "positive", "negative"))
            tables["triplets"] = Triplets(*(item_index(c[k], path)
                                            for k in ("anchor", "positive", "negative")))
        truth_path = directory / "truth.npz"
        truth = dict(np.load(truth_path)) if truth_path.is_file() else {}
        dataset = cls(name=manifest.get("name", directory.name), users=users, items=items,
                      metadata=manifest.get("metadata", {}), truth=truth, **tables)
        dataset.validate(source=str(directory))
        return dataset


def interactions_from_ratings(ratings: Ratings, min_rating: float | None) -> Interactions:
    """Implicit feedback from explicit ratings: every rating >= ``min_rating`` (every rating
    with None) becomes an interaction at the rating's timestamp, in row order. Ratings without
    timestamps get their row number, so the implicit split keeps the file's order."""
    keep = (np.ones(len(ratings), bool) if min_rating is None
            else np.asarray(ratings.value) >= min_rating)
    timestamp = (np.arange(len(ratings), dtype=np.int64) if ratings.timestamp is None
                 else np.asarray(ratings.timestamp, np.int64))
    return Interactions(user=ratings.user[keep], item=ratings.item[keep],
                        timestamp=timestamp[keep])


# Which columns of each relation hold user / item indices (validated against the tables' sizes).
_RELATIONS = (
    ("interactions", ("user",), ("item",)),
    ("ratings", ("user",), ("item",)),
    ("pair_ratings", ("user",), ("item_a", "item_b")),
    ("expert_pairs", (), ("item_a", "item_b")),
    ("outfits", ("user",), ("items",)),
    ("triplets", (), ("anchor", "positive", "negative")),
)


class _Index:
    """Maps string ids onto row indices, naming the file and row of an unknown id."""

    def __init__(self, ids: np.ndarray, column: str):
        self.lookup = {str(v): i for i, v in enumerate(ids)}
        self.column = column

    def __call__(self, values: np.ndarray, path: Path, allow_empty: bool = False) -> np.ndarray:
        out = np.empty(len(values), np.int32)
        for row, value in enumerate(values):
            if allow_empty and value == "":
                out[row] = -1
                continue
            index = self.lookup.get(value)
            if index is None:
                # row + 2: 1-based line numbers with the header on line 1.
                raise DataError(f"{path}, line {row + 2}: unknown {self.column} {str(value)!r}")
            out[row] = index
        return out


def _labelled_pairs(columns: dict[str, np.ndarray], item_index: _Index,
                    path: Path) -> dict[str, np.ndarray]:
    """The ``item_a``, ``item_b`` and ``label`` columns of a pair table, as indices and int8."""
    return {"item_a": item_index(columns["item_a"], path),
            "item_b": item_index(columns["item_b"], path),
            "label": _as_number(columns["label"], np.int8, path, "label")}


def _check_unique(ids: np.ndarray, what: str) -> None:
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{what}: duplicate ids {unique[counts > 1][:5].tolist()}")


def _check_range(index: np.ndarray, size: int, what: str, allow_missing: bool) -> None:
    low = -1 if allow_missing else 0
    bad = (index < low) | (index >= size)
    if bad.any():
        position = np.argwhere(bad)[0]
        raise DataError(f"{what}: index {index[tuple(position)].item()} at row {position[0]} is outside "
                        f"[{low}, {size})")


def _check_images_exist(directory: Path, image_paths: np.ndarray) -> None:
    for row, relative in enumerate(image_paths):
        if relative and not (directory / relative).is_file():
            raise MissingDataError(f"{directory / 'items.csv'}, line {row + 2}: image "
                                   f"{str(relative)!r} does not exist")


def _ids_or_empty(ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Ids at ``index``, "" where the index is -1 (also when there are no ids at all)."""
    if len(ids) == 0:
        return np.full(len(index), "")
    return np.where(index >= 0, ids[np.maximum(index, 0)], "")


def write_csv(path: Path, columns: dict[str, Any]) -> None:
    """Writes columns (name -> equal-length sequences) as a CSV with a header row."""
    names = list(columns)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(zip(*(np.asarray(columns[n]).tolist() for n in names)))


def _read_csv(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file, expected a header row") from None
        missing = [name for name in required if name not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; header is {header}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise DataError(f"{path}, line {line}: {len(row)} fields, header has {len(header)}")
            rows.append(row)
    columns = list(zip(*rows)) if rows else [()] * len(header)
    return {name: np.array(values, dtype=str) for name, values in zip(header, columns)}


def _as_number(values: np.ndarray, dtype: Any, path: Path, column: str) -> np.ndarray:
    # row + 2: 1-based line numbers with the header on line 1.
    return as_float(values, column, lines_of(str(path), 2)).astype(dtype)


def _numeric_or_str(values: np.ndarray) -> np.ndarray:
    """Side columns keep their strings unless every value parses as a number."""
    try:
        numbers = values.astype(np.float64)
    except ValueError:
        return values
    if np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64)
    return numbers.astype(np.float32)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
