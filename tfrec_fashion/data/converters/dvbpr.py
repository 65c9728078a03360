"""DVBPR's partitioned ``.npy`` datasets -> the project's dataset layout, images as files.

Public format (Kang, Fang, Wang & McAuley, "Visually-Aware Fashion Recommendation and Design
with Generative Image Models", ICDM 2017; github.com/kang205/DVBPR, whose
``download_dataset.sh`` fetches ``AmazonFashion6ImgPartitioned.npy``; the same layout is used by
``AmazonWomenWithImgPartitioned.npy``, ``AmazonMenWithImgPartitioned.npy`` and
``TradesyImgPartitioned.npy``). The file is a NumPy object array pickled under Python 2, read as
the repository's code does, ``np.load(path, allow_pickle=True, encoding="bytes")`` (so Python 2
strings, including every dict key, arrive as ``bytes``)::

    [user_train, user_validation, user_test, Item, usernum, itemnum]

    user_train       dict: user index (0..usernum-1) -> list of that user's training actions
    user_validation  dict: user index -> list holding the one held-out validation action
    user_test        dict: user index -> list holding the one held-out test action
                     action: dict with b'productid' -> item index (0..itemnum-1), the only key
                     DVBPR/main.py reads; b'reviewerID' and b'unixReviewTime' are used when
                     present (they are optional here)
    Item             dict or list: item index -> dict with b'imgs' -> the item's image file as
                     bytes (JPEG; a few are PNG), and b'c' -> its category, a one-hot vector
                     (6 classes in AmazonFashion6, the GAN's condition in GAN/ and PM/main.py);
                     a category name or class number is accepted too; b'asin' kept if present
    usernum, itemnum ints

Keys are accepted as ``bytes`` or ``str``. Output: users "0".."usernum-1" (user feature
``reviewer_id`` when actions carry it); items "0".."itemnum-1", category ``class_<k>`` for a
one-hot class k (or ``category_names[k]``), attribute ``asin`` when present; interactions = every
train, validation and test action (timestamp ``unixReviewTime`` or 0, see
``metadata.timestamps``); the published partition is kept in ``interaction_splits.csv``
(user_id, item_id, split in train/validation/test, one row per interactions.csv row); images
are written byte for byte as ``images/<item>.jpg`` (``.png`` / ``.gif`` by their signature).
An undecodable image raises DataError (``bad_images="raise"``) or leaves that item without an
image, counted (``bad_images="skip"``).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tfrec_fashion.data.converters import _tables
from tfrec_fashion.data.converters._io import PathLike, split_sources
from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Users, write_csv
from tfrec_fashion.errors import DataError

SPLITS = ("train", "validation", "test")
_SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF8", ".gif"))


def convert(*paths: PathLike, output_dir: PathLike | None = None, images: str = "write",
            bad_images: str = "raise", category_names: Sequence[str] | None = None,
            name: str | None = None) -> FashionDataset:
    """Converts one DVBPR ``*ImgPartitioned.npy`` file and saves the dataset.

    Args:
        paths: the ``.npy`` file, then the output folder (unless ``output_dir`` is given).
        images: "write" the item images as files, or "none".
        bad_images: "raise" or "skip" an item whose image bytes do not decode.
        category_names: names for the one-hot category classes, in class order.
        name: dataset name; default the file's stem.

    Raises:
        DataError: not the 6-part layout, an action without ``productid`` or pointing outside
            ``[0, itemnum)``, a user index outside ``[0, usernum)``, a bad image (each naming the
            file and the record, e.g. ``user_train[3][1]``), non-empty output folder.
    """
    if images not in ("write", "none"):
        raise ValueError(f"`images` must be 'write' or 'none'. Received: images={images!r}")
    if bad_images not in ("raise", "skip"):
        raise ValueError(f"`bad_images` must be 'raise' or 'skip'. Received: {bad_images!r}")
    sources, output_dir = split_sources(paths, output_dir, "dvbpr")
    if len(sources) != 1:
        raise ValueError(f"dvbpr: expected one .npy file, got {[str(p) for p in sources]}")
    path = sources[0]
    with _tables.staging(output_dir) as staging:
        parts, usernum, itemnum = _load(path)
        skipped: dict[str, int] = {"items_with_bad_images": 0}
        user, item, time, split, reviewer = _read_actions(path, parts[:3], usernum, itemnum)
        category, asin, image_paths = _read_items(
            path, parts[3], itemnum, category_names, staging if images == "write" else None,
            bad_images, skipped)
        user_features = {"reviewer_id": reviewer} if any(reviewer) else {}
        attributes = {"asin": asin} if any(asin) else {}
        dataset = FashionDataset(
            name=name or path.name.removesuffix(".npy"),
            users=Users(ids=np.array([str(u) for u in range(usernum)]), features=user_features),
            items=Items(ids=np.array([str(i) for i in range(itemnum)]), category=category,
                        attributes=attributes, image_paths=image_paths),
            interactions=Interactions(user=user, item=item, timestamp=time),
            metadata={"source": "DVBPR partitioned npy (Kang et al. 2017)", "files": [path.name],
                      "timestamps": "unixReviewTime where present, else 0",
                      "extra_files": {"interaction_splits.csv": "DVBPR's published partition: "
                                      "user_id, item_id, split per interactions.csv row"}})
        stats = {f"{s}_actions": int(np.count_nonzero(split == s)) for s in SPLITS}
        _tables.save(dataset, staging, "dvbpr", skipped, stats)
        write_csv(staging / "interaction_splits.csv", {
            "user_id": dataset.users.ids[user], "item_id": dataset.items.ids[item],
            "split": split})
    return dataset


def _key(record: Mapping, name: str) -> Any:
    """Looks a field up under its bytes key (Python 2 pickle) or its str key."""
    if name.encode() in record:
        return record[name.encode()]
    return record.get(name)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _load(path: Path) -> tuple[Sequence, int, int]:
    try:
        parts = np.load(path, allow_pickle=True, encoding="bytes")
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: not a readable .npy file ({type(error).__name__}: {error})") \
            from None
    if getattr(parts, "shape", None) != (6,):
        raise DataError(f"{path}: expected the 6-part DVBPR layout [user_train, user_validation, "
                        f"user_test, Item, usernum, itemnum], got shape "
                        f"{getattr(parts, 'shape', type(parts).__name__)}")
    usernum, itemnum = parts[4], parts[5]
    for label, value in (("usernum", usernum), ("itemnum", itemnum)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise DataError(f"{path}: {label} (part {4 if label == 'usernum' else 5}) should be a "
                            f"non-negative int, got {value!r:.80}")
    for index, label in enumerate(("user_train", "user_validation", "user_test")):
        if not isinstance(parts[index], Mapping):
            raise DataError(f"{path}: {label} (part {index}) should be a dict user -> actions, "
                            f"got {type(parts[index]).__name__}")
    if not isinstance(parts[3], (Mapping, list, tuple, np.ndarray)) or len(parts[3]) != itemnum:
        raise DataError(f"{path}: Item (part 3) should hold itemnum={itemnum} entries, got "
                        f"{len(parts[3]) if hasattr(parts[3], '__len__') else parts[3]!r:.80}")
    return parts, int(usernum), int(itemnum)


def _read_actions(path: Path, partitions: Sequence[Mapping], usernum: int, itemnum: int
                  ) -> tuple[np.ndarray, ...]:
    user, item, time, split = [], [], [], []
    reviewer = [""] * usernum
    for label, partition in zip(("user_train", "user_validation", "user_test"), partitions):
        for u in sorted(partition):
            if not isinstance(u, (int, np.integer)) or not 0 <= u < usernum:
                raise DataError(f"{path}: {label} has user {u!r}, outside [0, usernum={usernum})")
            actions = partition[u]
            if not isinstance(actions, (list, tuple)):
                raise DataError(f"{path}: {label}[{u}] should be a list of actions, got "
                                f"{type(actions).__name__}")
            for k, action in enumerate(actions):
                where = f"{path}: {label}[{u}][{k}]"
                if not isinstance(action, Mapping):
                    raise DataError(f"{where}: expected a dict, got {type(action).__name__}")
                product = _key(action, "productid")
                if product is None:
                    raise DataError(f"{where}: missing b'productid'; the action has "
                                    f"{sorted(map(_text, action))}")
                if not isinstance(product, (int, np.integer)) or not 0 <= product < itemnum:
                    raise DataError(f"{where}: productid {product!r} is outside "
                                    f"[0, itemnum={itemnum})")
                timestamp = _key(action, "unixReviewTime")
                if timestamp is not None and not isinstance(timestamp, (int, np.integer)):
                    raise DataError(f"{where}: unixReviewTime {timestamp!r} is not an int")
                if not reviewer[u] and _key(action, "reviewerID") is not None:
                    reviewer[u] = _text(_key(action, "reviewerID"))
                user.append(int(u))
                item.append(int(product))
                time.append(int(timestamp or 0))
                split.append(label.removeprefix("user_"))
    return (np.array(user, np.int32), np.array(item, np.int32), np.array(time, np.int64),
            np.array(split, dtype=str), np.array(reviewer, dtype=str))


def _read_items(path: Path, catalogue: Any, itemnum: int, category_names: Sequence[str] | None,
                image_dir: Path | None, bad_images: str, skipped: dict[str, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    category, asin, image_paths = [], [], []
    for i in tqdm(range(itemnum), desc="DVBPR items", disable=None, leave=False):
        try:
            entry = catalogue[i]
        except (KeyError, IndexError):
            raise DataError(f"{path}: Item has no entry for item {i}") from None
        if not isinstance(entry, Mapping):
            raise DataError(f"{path}: Item[{i}]: expected a dict, got {type(entry).__name__}")
        category.append(_category(_key(entry, "c"), category_names, f"{path}: Item[{i}]"))
        asin.append(_text(_key(entry, "asin")) if _key(entry, "asin") is not None else "")
        if image_dir is not None:
            image_paths.append(_write_image(_key(entry, "imgs"), image_dir, i,
                                            f"{path}: Item[{i}]", bad_images, skipped))
    return (np.array(category, dtype=str), np.array(asin, dtype=str),
            np.array(image_paths, dtype=str) if image_dir is not None else None)


def _category(value: Any, names: Sequence[str] | None, where: str) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, (bytes, str)):
        return _text(value)
    if isinstance(value, (int, np.integer)):
        k = int(value)
    else:
        vector = np.asarray(value)
        if vector.ndim != 1 or not np.isin(vector, (0, 1)).all() or vector.sum() != 1:
            raise DataError(f"{where}: category b'c' should be a one-hot vector, a name or a "
                            f"class number, got {value!r:.80}")
        k = int(np.argmax(vector))
    if names is None:
        return f"class_{k}"
    if not 0 <= k < len(names):
        raise DataError(f"{where}: category class {k} has no name in category_names={names!r}")
    return names[k]


def _write_image(data: Any, image_dir: Path, i: int, where: str, bad_images: str,
                 skipped: dict[str, int]) -> str:
    from PIL import Image

    problem = None
    suffix = None
    if not isinstance(data, bytes):
        problem = f"b'imgs' should be the image file's bytes, got {type(data).__name__}"
    else:
        suffix = next((s for magic, s in _SIGNATURES if data.startswith(magic)), None)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            problem = f"image bytes do not decode ({type(error).__name__}: {error})"
        if problem is None and suffix is None:
            problem = "image is neither JPEG, PNG nor GIF"
    if problem is not None:
        if bad_images == "raise":
            raise DataError(f"{where}: {problem}; pass bad_images='skip' to keep the item "
                            "without an image")
        skipped["items_with_bad_images"] += 1
        return ""
    relative = f"images/{i}{suffix}"
    (image_dir / "images").mkdir(exist_ok=True)
    (image_dir / relative).write_bytes(data)
    return relative
