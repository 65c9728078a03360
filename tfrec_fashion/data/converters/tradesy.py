"""Tradesy (VBPR) user lists + VBPR image features -> the project's dataset layout.

Public format (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016; http://jmcauley.ucsd.edu/data/tradesy/; also used by DVBPR, Kang et al.,
ICDM 2017):

- ``tradesy.json.gz``: one user per line, a Python dict literal (McAuley's "loose JSON", read
  with ``ast.literal_eval``; strict JSON lines are accepted too)::

      {'uid': '1', 'lists': {'bought': ['466', '5745'], 'selling': [], 'want': ['1003'],
                             'sold': ['15']}}

  ``uid`` is the user id; each list holds Tradesy item ids (decimal strings).
- ``image_features_tradesy.b``: VBPR's binary features, see ``_features.py`` (10-byte ASCII
  item id + 4096 little-endian float32 per record). Ids are compared as integers when both are
  decimal, so space, NUL or zero padding in the 10-byte field all match.

Output: users = every ``uid`` with at least one selected action (others are skipped and
counted); items = every item in a selected list (order of first appearance), category
"unknown" (the release has no categories); interactions = one row per distinct (user, item) of
the lists in ``feedback``, timestamp 0 (the release has no times; ``metadata.timestamps``
says so). VBPR and DVBPR treat purchases and "wants" as positive feedback, hence the default
``feedback=("bought", "want")``; "selling" and "sold" can be added. Features are aligned and
missing ones handled exactly as in ``amazon.py`` (``missing_features`` "drop" or "zeros").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfrec_fashion.data.converters import _features, _tables
from tfrec_fashion.data.converters._io import (
    PathLike,
    iter_records,
    require_fields,
    split_sources,
)
from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Users
from tfrec_fashion.errors import DataError

LISTS = ("bought", "want", "selling", "sold")


def convert(*paths: PathLike, output_dir: PathLike | None = None,
            features_path: PathLike | None = None,
            feedback: Sequence[str] = ("bought", "want"), missing_features: str = "drop",
            feature_dim: int = _features.FEATURE_DIM, name: str = "tradesy") -> FashionDataset:
    """Converts ``tradesy.json[.gz]`` (+ ``image_features_tradesy.b``) and saves the dataset.

    Args:
        paths: the user-lists file, optionally the ``.b`` feature file, then the output folder
            (unless ``output_dir`` is given).
        features_path: the feature file given by keyword instead.
        feedback: which lists count as implicit feedback, a subset of
            ("bought", "want", "selling", "sold").
        missing_features: "drop" or "zeros", for items without a feature vector.
        feature_dim: floats per ``.b`` record (4096 in the public file).

    Raises:
        DataError: malformed line, missing ``uid`` / ``lists`` / selected list, repeated uid,
            truncated ``.b`` record, non-empty output folder (each naming file and line/record).
    """
    feedback = tuple(feedback)
    if not feedback or set(feedback) - set(LISTS):
        raise ValueError(f"`feedback` must be a non-empty subset of {LISTS}. "
                         f"Received: feedback={feedback!r}")
    if missing_features not in _features.MISSING_FEATURES:
        raise ValueError(f"`missing_features` must be one of {_features.MISSING_FEATURES}. "
                         f"Received: missing_features={missing_features!r}")
    sources, output_dir = split_sources(paths, output_dir, "tradesy")
    lists_path, features_path = _classify(sources, features_path)
    with _tables.staging(output_dir) as staging:
        users, items = _tables.IdIndex(), _tables.IdIndex()
        skipped: dict[str, int] = {}
        stats: dict[str, int] = {}
        user, item = _read_lists(lists_path, feedback, users, items, skipped, stats)
        user_ids, item_ids = users.ids, items.ids
        attributes: dict[str, np.ndarray] = {}
        features = None
        if features_path is not None:
            aligned = _features.align_features(
                features_path, item_ids, user, item, len(user_ids), missing_features,
                feature_dim, skipped, stats, rows_name="interactions", canonical=_canonical_id)
            if missing_features == "zeros":
                attributes["has_feature"] = aligned.found.astype(np.int64)
            features, user, item = aligned.features, aligned.user, aligned.item
            user_ids, item_ids = user_ids[aligned.keep_users], item_ids[aligned.keep_items]
        dataset = FashionDataset(
            name=name, users=Users(ids=user_ids),
            items=Items(ids=item_ids, category=np.full(len(item_ids), "unknown"),
                        attributes=attributes, features=features),
            interactions=Interactions(user=user, item=item,
                                      timestamp=np.zeros(len(user), np.int64)),
            metadata={"source": "Tradesy (VBPR, He & McAuley 2016)",
                      "files": [p.name for p in (lists_path, features_path) if p],
                      "feedback": list(feedback), "missing_features": missing_features,
                      "timestamps": "none in the source; all 0"})
        _tables.save(dataset, staging, "tradesy", skipped, stats)
    return dataset


def _classify(sources: list[Path], features_path: PathLike | None) -> tuple[Path, Path | None]:
    features = Path(features_path) if features_path else None
    lists = []
    for path in sources:
        if path.name.endswith((".b", ".b.gz")) and features is None:
            features = path
        else:
            lists.append(path)
    if len(lists) != 1:
        raise ValueError("tradesy: expected one tradesy.json[.gz] (plus an optional .b file), "
                         f"got {[str(p) for p in lists]}")
    return lists[0], features


def _canonical_id(value: str) -> str:
    return str(int(value)) if value.isdigit() else value


def _read_lists(path: Path, feedback: tuple[str, ...], users: _tables.IdIndex,
                items: _tables.IdIndex, skipped: dict[str, int],
                stats: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    user: list[int] = []
    item: list[int] = []
    seen_uids: dict[str, int] = {}
    per_list = dict.fromkeys(feedback, 0)
    duplicates = empty = 0
    for number, record in iter_records(path):
        require_fields(record, ("uid", "lists"), path, number, {"uid": (str, int), "lists": dict})
        uid = str(record["uid"])
        if uid in seen_uids:
            raise DataError(f"{path}, line {number}: uid {uid!r} already appeared on line "
                            f"{seen_uids[uid]}")
        seen_uids[uid] = number
        lists = record["lists"]
        require_fields(lists, feedback, path, number)
        chosen: dict[str, None] = {}
        for kind in feedback:
            values = lists[kind]
            if not isinstance(values, list) or not all(isinstance(v, (str, int)) for v in values):
                raise DataError(f"{path}, line {number}: lists[{kind!r}] should be a list of item "
                                f"ids, got {values!r:.80}")
            per_list[kind] += len(values)
            for value in values:
                if str(value) in chosen:
                    duplicates += 1
                chosen[str(value)] = None
        if not chosen:
            empty += 1
            continue
        u = users.add(uid)
        for value in chosen:
            user.append(u)
            item.append(items.add(value))
    if not user:
        raise DataError(f"{path}: no user has any {list(feedback)} action")
    skipped["users_without_selected_feedback"] = empty
    stats.update({f"{kind}_actions": count for kind, count in per_list.items()})
    stats["repeated_user_item_actions_merged"] = duplicates
    return np.array(user, np.int32), np.array(item, np.int32)
