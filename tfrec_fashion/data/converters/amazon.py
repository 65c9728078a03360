"""Amazon reviews (McAuley) + item metadata + VBPR image features -> the project's dataset layout.

Public format (both releases are read; each line may be strict JSON or a Python dict literal,
the latter parsed with ``ast.literal_eval``; ``.gz`` files are read directly):

2014 release (McAuley, Targett, Shi & van den Hengel, SIGIR 2015; He & McAuley, VBPR, AAAI 2016;
http://jmcauley.ucsd.edu/data/amazon/):

- ``reviews_<Category>.json.gz`` or the 5-core ``reviews_<Category>_5.json.gz``, one review per
  line: ``{"reviewerID": "A2SUAM1J3GNN3B", "asin": "0000013714", "reviewerName": "...",
  "helpful": [2, 3], "reviewText": "...", "overall": 5.0, "summary": "...",
  "unixReviewTime": 1252800000, "reviewTime": "09 13, 2009"}``
- ``meta_<Category>.json.gz``, one item per line in "loose JSON" (Python literal):
  ``{'asin': '0000031852', 'title': '...', 'price': 3.17, 'imUrl': 'http://...jpg',
  'related': {...}, 'salesRank': {...}, 'brand': '...', 'categories': [['Clothing, Shoes &
  Jewelry', 'Women', 'Clothing', 'Dresses'], [...]]}``
- ``image_features_<Category>.b``: VBPR's binary features, see ``_features.py`` (10-byte ASCII
  asin + 4096 little-endian float32 per record, no header), streamed record by record.

2018 release (Ni, Li & McAuley, EMNLP 2019; https://nijianmo.github.io/amazon/), strict JSON:

- ``<Category>.json.gz`` / ``<Category>_5.json.gz``: same review fields plus ``verified``,
  ``style``, ``vote``, ``image``.
- ``meta_<Category>.json.gz``: ``asin``, ``title``, ``brand``, ``category`` (one path, a list of
  strings), ``imageURL`` / ``imageURLHighRes`` (lists), ``feature``, ``description``, ``price``...

Read fields: reviews need ``reviewerID``, ``asin``, ``overall`` (1..5) and ``unixReviewTime``;
metadata needs ``asin`` and uses ``title``, ``brand``, the first path of ``categories`` (2014) or
``category`` (2018), and ``imUrl`` (2014) or the first ``imageURL`` (2018).

Output:

- users: every ``reviewerID``; items: every reviewed ``asin`` (file order of first appearance),
  ``category`` = the leaf of the category path ("unknown" without metadata), attributes
  ``brand``, ``category_path`` (" > "-joined), ``image_url``, titles from ``title``.
- interactions: each review as implicit feedback (user, item, unixReviewTime), as VBPR does;
  ratings: ``overall`` with ``metadata.rating_range = [1, 5]``. With ``deduplicate`` (default)
  a user's repeated reviews of one item keep the earliest (counted).
- item_features.npy: the ``.b`` vectors aligned to items.csv. Items without a vector are dropped
  with their reviews, and users left without reviews are dropped too
  (``missing_features="drop"``, the VBPR protocol, counts in ``metadata.skipped``), or kept with
  a zero vector and attribute ``has_feature`` = 0 (``missing_features="zeros"``).

Metadata records of items nobody reviewed are ignored (counted in ``metadata.stats``); a
repeated metadata ``asin`` (the 2018 files have some) keeps its first record (counted).

Example:

    convert("reviews_Clothing_Shoes_and_Jewelry_5.json.gz",
            "meta_Clothing_Shoes_and_Jewelry.json.gz",
            "image_features_Clothing_Shoes_and_Jewelry.b", "data/amazon_clothing")
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tfrec_fashion.data.converters import _features, _tables
from tfrec_fashion.data.converters._io import (
    PathLike,
    as_number,
    iter_records,
    require_fields,
    split_sources,
)
from tfrec_fashion.data.dataset import (
    FashionDataset,
    Interactions,
    Items,
    Ratings,
    Users,
)
from tfrec_fashion.errors import DataError

RATING_RANGE = (1.0, 5.0)


def convert(*paths: PathLike, output_dir: PathLike | None = None,
            metadata_path: PathLike | None = None, features_path: PathLike | None = None,
            missing_features: str = "drop", feature_dim: int = _features.FEATURE_DIM,
            deduplicate: bool = True, name: str | None = None) -> FashionDataset:
    """Converts Amazon reviews (+ metadata, + ``.b`` features) and saves the dataset.

    Args:
        paths: the reviews file, optionally the metadata file (recognised by its ``meta_``
            prefix) and the feature file (``.b``), then the output folder (unless
            ``output_dir`` is given).
        metadata_path, features_path: the same files given by keyword instead.
        missing_features: "drop" or "zeros", for items without a feature vector.
        feature_dim: floats per ``.b`` record (4096 in every public file).
        deduplicate: keep only the earliest review of a (user, item) pair.
        name: dataset name; default ``amazon_<reviews file stem>``.

    Raises:
        DataError: malformed line (naming file and line), missing field, rating outside 1..5,
            truncated ``.b`` record, non-empty output folder.
    """
    if missing_features not in _features.MISSING_FEATURES:
        raise ValueError(f"`missing_features` must be one of {_features.MISSING_FEATURES}. "
                         f"Received: missing_features={missing_features!r}")
    sources, output_dir = split_sources(paths, output_dir, "amazon")
    reviews_path, metadata_path, features_path = _classify(sources, metadata_path, features_path)
    with _tables.staging(output_dir) as staging:
        skipped: dict[str, int] = {}
        stats: dict[str, int] = {}
        users, items = _tables.IdIndex(), _tables.IdIndex()
        user, item, time, rating = _read_reviews(reviews_path, users, items, deduplicate, stats)
        columns = _read_metadata(metadata_path, items, stats) if metadata_path else None
        item_ids = items.ids
        category, attributes, titles = _item_columns(columns, len(item_ids))
        features = None
        user_ids = users.ids
        if features_path is not None:
            aligned = _features.align_features(
                features_path, item_ids, user, item, len(user_ids), missing_features,
                feature_dim, skipped, stats, rows_name="reviews")
            keep, rows = aligned.keep_items, aligned.keep_rows
            if missing_features == "zeros":
                attributes["has_feature"] = aligned.found.astype(np.int64)
            features, user, item = aligned.features, aligned.user, aligned.item
            time, rating, user_ids = time[rows], rating[rows], user_ids[aligned.keep_users]
            item_ids, category = item_ids[keep], category[keep]
            attributes = {k: v[keep] for k, v in attributes.items()}
            titles = titles[keep] if titles is not None else None
        dataset = FashionDataset(
            name=name or f"amazon_{_stem(reviews_path)}",
            users=Users(ids=user_ids),
            items=Items(ids=item_ids, category=category, attributes=attributes, titles=titles,
                        features=features),
            interactions=Interactions(user=user, item=item, timestamp=time),
            ratings=Ratings(user=user, item=item, value=rating),
            metadata={"source": "Amazon reviews (McAuley)",
                      "files": [p.name for p in (reviews_path, metadata_path, features_path) if p],
                      "rating_range": list(RATING_RANGE), "missing_features": missing_features})
        _tables.save(dataset, staging, "amazon", skipped, stats)
    return dataset


def _classify(sources: list[Path], metadata_path: PathLike | None,
              features_path: PathLike | None) -> tuple[Path, Path | None, Path | None]:
    reviews = []
    metadata = Path(metadata_path) if metadata_path else None
    features = Path(features_path) if features_path else None
    for path in sources:
        if path.name.startswith("meta_") and metadata_path is None and metadata is None:
            metadata = path
        elif path.name.endswith((".b", ".b.gz")) and features_path is None and features is None:
            features = path
        else:
            reviews.append(path)
    if len(reviews) != 1:
        raise ValueError("amazon: expected one reviews file (plus optional meta_*.json[.gz] and "
                         f"*.b files), got reviews files {[str(p) for p in reviews]}")
    return reviews[0], metadata, features


def _stem(path: Path) -> str:
    return re.sub(r"(\.json|\.gz|\.txt)+$", "", path.name)


def _read_reviews(path: Path, users: _tables.IdIndex, items: _tables.IdIndex, deduplicate: bool,
                  stats: dict[str, int]) -> tuple[np.ndarray, ...]:
    user: list[int] = []
    item: list[int] = []
    time: list[int] = []
    rating: list[float] = []
    first_row: dict[tuple[int, int], int] = {}
    duplicates = 0
    for number, record in iter_records(path):
        require_fields(record, ("reviewerID", "asin", "overall", "unixReviewTime"), path, number,
                       {"reviewerID": str, "asin": str})
        value = as_number(record["overall"], path, number, "overall")
        if not RATING_RANGE[0] <= value <= RATING_RANGE[1]:
            raise DataError(f"{path}, line {number}: overall {record['overall']!r} is outside "
                            f"{list(RATING_RANGE)}")
        timestamp = as_number(record["unixReviewTime"], path, number, "unixReviewTime", int)
        u, i = users.add(record["reviewerID"]), items.add(record["asin"])
        if deduplicate:
            row = first_row.get((u, i))
            if row is not None:
                duplicates += 1
                if timestamp < time[row]:
                    time[row], rating[row] = timestamp, value
                continue
            first_row[(u, i)] = len(user)
        user.append(u)
        item.append(i)
        time.append(timestamp)
        rating.append(value)
    if not user:
        raise DataError(f"{path}: no reviews")
    stats["reviews"] = len(user) + duplicates
    stats["duplicate_reviews_merged"] = duplicates
    return (np.array(user, np.int32), np.array(item, np.int32), np.array(time, np.int64),
            np.array(rating, np.float32))


def _read_metadata(path: Path, items: _tables.IdIndex, stats: dict[str, int]) -> dict[str, list]:
    n_items = len(items)
    columns: dict[str, list] = {k: [None] * n_items for k in
                                ("title", "brand", "category_path", "image_url")}
    seen = np.zeros(n_items, bool)
    unused = duplicates = 0
    for number, record in iter_records(path):
        require_fields(record, ("asin",), path, number, {"asin": str})
        row = items.get(record["asin"])
        if row is None:
            unused += 1
            continue
        if seen[row]:
            duplicates += 1
            continue
        seen[row] = True
        columns["title"][row] = _text(record, "title", path, number)
        columns["brand"][row] = _text(record, "brand", path, number)
        columns["category_path"][row] = _category_path(record, path, number)
        columns["image_url"][row] = _image_url(record, path, number)
    stats["metadata_records_of_unreviewed_items"] = unused
    stats["duplicate_metadata_records"] = duplicates
    stats["items_without_metadata"] = int(np.count_nonzero(~seen))
    return columns


def _text(record: dict, field: str, path: Path, number: int) -> str:
    value = record.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{path}, line {number}: field {field!r} should be a string, got "
                        f"{type(value).__name__}")
    return value


def _category_path(record: dict, path: Path, number: int) -> list[str]:
    if record.get("categories") is not None:  # 2014: a list of category paths
        paths = record["categories"]
        ok = isinstance(paths, list) and all(
            isinstance(p, list) and all(isinstance(c, str) for c in p) for p in paths)
        if not ok:
            raise DataError(f"{path}, line {number}: 'categories' should be a list of lists of "
                            f"strings, got {paths!r:.80}")
        return paths[0] if paths else []
    value = record.get("category")  # 2018: one path
    if value is None:
        return []
    if not (isinstance(value, list) and all(isinstance(c, str) for c in value)):
        raise DataError(f"{path}, line {number}: 'category' should be a list of strings, got "
                        f"{value!r:.80}")
    return value


def _image_url(record: dict, path: Path, number: int) -> str:
    if record.get("imUrl") is not None:
        return _text(record, "imUrl", path, number)
    urls = record.get("imageURL") or record.get("imageURLHighRes") or []
    if not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
        raise DataError(f"{path}, line {number}: 'imageURL' should be a list of strings")
    return urls[0] if urls else ""


def _item_columns(columns: dict[str, list] | None, n_items: int
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    if columns is None:
        return np.full(n_items, "unknown"), {}, None
    paths = [p or [] for p in columns["category_path"]]
    category = np.array([p[-1] if p else "unknown" for p in paths], dtype=object).astype(str)
    attributes = {
        "brand": np.array([v or "" for v in columns["brand"]], dtype=object).astype(str),
        "category_path": np.array([" > ".join(p) for p in paths], dtype=object).astype(str),
        "image_url": np.array([v or "" for v in columns["image_url"]], dtype=object).astype(str),
    }
    titles = np.array([v or "" for v in columns["title"]], dtype=object).astype(str)
    return category, attributes, titles
