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
returns numpy outputs. A signature whose function takes exactly the SignatureDef's inputs (names,
dtypes, shapes: every export of ours) is called with its flat list of tensors, skipping
TensorFlow's keyword binding, which re-checks what ``predict.py`` has already checked and took a
third of the call (180 of 550 us for one user's ``recommend`` on 2 cores); any other function is
called by keyword. :meth:`Servable.default_inputs` are the SignatureDef's defaults as read-only
arrays, converted once; ``run`` passes them to TensorFlow as tensors made once. A Servable is
immutable once loaded; requests hold a reference to the one they started with, so unloading a
version never breaks a request that is running on it.
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
        self._functions = {name: _SignatureFunction(function, self.signature_defs.get(name))
                           for name, function in loaded.signatures.items()}
        if ann_index is not None:
            self.signature_defs[APPROXIMATE_SIGNATURE] = signature_defs[RECOMMEND.name]
        self._defaults = {  # a function's own: the arrays its default tensors were made of
            name: ({alias: array for alias, (array, _) in
                    self._functions[name].default_tensors.items()}
                   if name in self._functions else
                   {alias: _read_only(tf.make_ndarray(proto))
                    for alias, proto in signature.defaults.items()})
            for name, signature in self.signature_defs.items()}

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

    def default_inputs(self, signature_name: str) -> dict[str, np.ndarray]:
        """The SignatureDef's ``defaults`` as read-only numpy arrays (converted at load)."""
        return self._defaults[signature_name]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on complete, validated inputs; outputs as numpy arrays."""
        if signature_name == APPROXIMATE_SIGNATURE and self.ann_index is not None:
            return self._recommend_approximate(inputs)
        outputs = self._functions[signature_name](inputs)
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


class _SignatureFunction:
    """A loaded signature's function, called on numpy inputs (see the module docstring).

    ``flat_order`` is the input aliases in the order of the function's flat call when its
    structured inputs are exactly the SignatureDef's (keyword-only, same names, dtypes and
    shapes, one graph input each, placeholders named as the aliases); else None, and the
    function is called by keyword. The SignatureDef's defaults become tensors once: an input
    that *is* (identity) an array of :meth:`Servable.default_inputs` is passed as its tensor.
    """

    def __init__(self, function, signature: SignatureDef | None):
        self.function = function
        self.dtypes = ({alias: tf.dtypes.as_dtype(info.dtype)
                        for alias, info in signature.inputs.items()} if signature else {})
        self.flat_order = _flat_order(function, signature) if signature else None
        self.default_tensors = {}
        if signature is not None:
            for alias, proto in signature.defaults.items():
                value = _read_only(tf.make_ndarray(proto))
                self.default_tensors[alias] = (value, tf.constant(value, self.dtypes[alias]))

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
        tensors = {alias: self._tensor(alias, value) for alias, value in inputs.items()}
        if self.flat_order is None or len(tensors) != len(self.flat_order):
            return self.function(**tensors)
        return self.function._call_flat(  # noqa: SLF001 - see the module docstring
            [tensors[alias] for alias in self.flat_order], self.function.captured_inputs)

    def _tensor(self, alias: str, value: np.ndarray) -> tf.Tensor:
        default = self.default_tensors.get(alias)
        if default is not None and default[0] is value:
            return default[1]
        return tf.constant(value, self.dtypes.get(alias))


def _flat_order(function, signature: SignatureDef) -> list[str] | None:
    """The aliases in the order ``function._call_flat`` takes them, or None (call by keyword)."""
    try:
        args, kwargs = function.structured_input_signature
        graph_inputs = [tensor.name for tensor in function.inputs]
        captured = function.captured_inputs
        function._call_flat  # noqa: B018, SLF001 - present in this TensorFlow?
    except (AttributeError, TypeError, ValueError):
        return None
    if args or not isinstance(kwargs, dict) or set(kwargs) != set(signature.inputs):
        return None
    order = sorted(kwargs)  # how a dict flattens
    if graph_inputs[:len(order)] != [f"{alias}:0" for alias in order] or \
            len(graph_inputs) != len(order) + len(captured):
        return None
    for alias in order:
        spec, info = kwargs[alias], signature.inputs[alias]
        if not isinstance(spec, tf.TensorSpec) or spec.dtype.as_datatype_enum != info.dtype:
            return None
        declared = (None if info.tensor_shape.unknown_rank else
                    [dim.size if dim.size >= 0 else None for dim in info.tensor_shape.dim])
        if (spec.shape.as_list() if spec.shape.rank is not None else None) != declared:
            return None
    return order


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


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

