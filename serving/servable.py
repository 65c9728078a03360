"""One loaded version of one model: its SignatureDefs and a way to run each signature.

:meth:`Servable.load` reads ``<base>/<model>/<version>/``:

- ``tf.saved_model.load`` gives the callable signatures (TensorFlow only: a SavedModel that needs
  project code to load is a broken export, and fails here).
- ``saved_model.pb`` gives the SignatureDefs (dtypes, shapes, defaults) that requests are
  validated against and that GetModelMetadata returns, exactly as TF Serving reads them.
- ``assets.extra/ann/``, when present, is loaded with ``tfrec_fashion_serving.ann.AnnIndex``
  (imported lazily; if the import or the load fails the version is served without it, and the
  log says why). It adds a virtual signature ``recommend_approximate``: the SignatureDef of
  ``recommend`` under a new name, computed as ``user_query`` (query vectors) then
  ``AnnIndex.search``.

:meth:`Servable.run` takes complete, validated numpy inputs (``predict.py`` checks them) and
returns numpy outputs. A Servable is immutable once loaded; requests hold a reference to the one
they started with, so unloading a version never breaks a request that is running on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from .contract import ANN_DIRECTORY, RECOMMEND, USER_QUERY
from .contract import RECOMMEND_APPROXIMATE as APPROXIMATE_SIGNATURE
from .errors import invalid_argument

log = logging.getLogger(__name__)

SignatureDef = meta_graph_pb2.SignatureDef


def import_ann_index(directory: str):
    """``AnnIndex.load(directory)`` from ``tfrec_fashion_serving.ann``, imported on first use."""
    from .ann import AnnIndex  # lazy: the approximate index is optional

    return AnnIndex.load(directory)


def read_signature_defs(path: str) -> dict[str, SignatureDef]:
    """All SignatureDefs of the "serve" MetaGraph in ``<path>/saved_model.pb``."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, tf.saved_model.SAVED_MODEL_FILENAME_PB), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    graphs = saved_model.meta_graphs
    serving = [graph for graph in graphs
               if tf.saved_model.SERVING in graph.meta_info_def.tags] or graphs[:1]
    if not serving:
        raise ValueError(f"{path}/saved_model.pb holds no MetaGraph")
    return dict(serving[0].signature_def)


class Servable:
    """A loaded model version.

    Args:
        name: the model's name in models.config.
        version: the version number.
        path: its directory.
        loaded: the object ``tf.saved_model.load`` returned (kept alive: its resources, such as
            lookup tables, belong to it).
        signature_defs: every SignatureDef of saved_model.pb (plus virtual ones).
        ann_index: an ``AnnIndex`` or None.
    """

    def __init__(self, name: str, version: int, path: str, loaded, signature_defs:
                 dict[str, SignatureDef], ann_index=None):
        self.name = name
        self.version = version
        self.path = path
        self.loaded = loaded
        self.ann_index = ann_index
        self.signature_defs = dict(signature_defs)
        self._functions = dict(loaded.signatures)
        if ann_index is not None:
            self.signature_defs[APPROXIMATE_SIGNATURE] = signature_defs[RECOMMEND.name]

    @classmethod
    def load(cls, name: str, version: int, path: str,
             ann_loader: Callable[[str], object] | None = import_ann_index) -> Servable:
        """Loads the SavedModel at ``path`` (and its approximate index, if any)."""
        signature_defs = read_signature_defs(path)
        loaded = tf.saved_model.load(path)
        ann_index = _load_ann_index(name, version, path, signature_defs, ann_loader)
        return cls(name, version, path, loaded, signature_defs, ann_index)

    @property
    def signature_names(self) -> list[str]:
        """The signatures Predict can run (TF's internal ``__saved_model_init_op`` excluded)."""
        return sorted(name for name in self.signature_defs if not name.startswith("__"))

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on complete, validated inputs; outputs as numpy arrays."""
        if signature_name == APPROXIMATE_SIGNATURE and self.ann_index is not None:
            return self._recommend_approximate(inputs)
        signature = self.signature_defs[signature_name]
        tensors = {alias: tf.convert_to_tensor(value, dtype=signature.inputs[alias].dtype)
                   for alias, value in inputs.items()}
        outputs = self._functions[signature_name](**tensors)
        return {alias: tensor.numpy() for alias, tensor in outputs.items()}

    def _recommend_approximate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``recommend`` through the approximate index: user_query, then AnnIndex.search."""
        batch_size = max(len(value) for value in inputs.values())
        rows = {alias: _broadcast_rows(alias, value, batch_size) for alias, value in inputs.items()}
        user = self.run(USER_QUERY.name, {"user_id": rows["user_id"]})
        exclude = rows["exclude_item_ids"]
        if "seen_item_ids" in user and "exclude_seen" in rows:
            # What each user bought, for the rows that ask to leave it out (as recommend does).
            seen = np.where(rows["exclude_seen"][:, None], user["seen_item_ids"], b"")
            exclude = np.concatenate([exclude.astype(object), seen.astype(object)], axis=1)
        try:
            item_ids, scores = self.ann_index.search(user["query"], rows["k"], rows["category"],
                                                     exclude)
        except ValueError as error:  # the index refusing the request: k out of range, ...
            raise invalid_argument(f"{APPROXIMATE_SIGNATURE}: {error}") from None
        return {"item_ids": np.asarray(item_ids, dtype=object),
                "scores": np.asarray(scores, dtype=np.float32),
                "cold_start": user["cold_start"]}


def _load_ann_index(name: str, version: int, path: str, signature_defs: dict[str, SignatureDef],
                    ann_loader: Callable[[str], object] | None):
    """The version's approximate index, or None (none exported, or it failed: logged)."""
    directory = os.path.join(path, ANN_DIRECTORY)
    if ann_loader is None or not os.path.isdir(directory):
        return None
    missing = {RECOMMEND.name, USER_QUERY.name} - set(signature_defs)
    if missing:
        log.warning("%s version %d has %s but no %s signature: serving it without the "
                    "approximate index", name, version, ANN_DIRECTORY, sorted(missing))
        return None
    try:
        return ann_loader(directory)
    except Exception as error:  # noqa: BLE001 - the exact index still serves; say why in the log
        log.warning("%s version %d: approximate index %s not loaded (%s: %s); serving without "
                    "%s", name, version, directory, type(error).__name__, error,
                    APPROXIMATE_SIGNATURE)
        return None


def _broadcast_rows(alias: str, value: np.ndarray, batch_size: int) -> np.ndarray:
    """Repeats a batch-size-1 input over the batch, as the contract's ``recommend`` does."""
    if len(value) == batch_size:
        return value
    if len(value) == 1:
        return np.repeat(value, batch_size, axis=0)
    raise invalid_argument(f"Input {alias!r} has batch size {len(value)}; every input of "
                           f"{APPROXIMATE_SIGNATURE} must have batch size 1 or {batch_size}")

