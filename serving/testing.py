"""A tiny recommender SavedModel that follows the export contract, for tests and benchmarks.

The serving tests and ``benchmarks/serving_latency.py`` need SavedModels shaped exactly like the
ones ``tfrec_fashion_export`` writes (signatures ``recommend`` (also ``serving_default``),
``score`` and ``user_query``, string ids, the same defaults, bad inputs failing inside the graph
with ``InvalidArgumentError``) without training anything and without importing
``tfrec_fashion``. Both are built from ``contract.py``'s declarations, and
``tests/serving/test_contract.py`` holds this one to them. This module builds one from plain
TensorFlow over a small random catalogue::

    from tfrec_fashion_serving import testing

    model = testing.ToyRecommender(testing.ToyCatalogue.random(seed=0))
    testing.write_version(model, "/tmp/base/toy", version=1)      # atomic: .tmp-1-* then rename
    testing.write_models_config("/tmp/base", {"toy": None})       # base_path "/models/toy"

Users ``u0 .. u{n-1}`` and items ``i0 .. i{m-1}`` have random vectors; items belong to categories
``c0 ..``. Unknown users get the mean user vector (``cold_start`` true). Retrieval is an exact
inner-product top-k (the real export uses TFRS BruteForce, which computes the same thing).

``answers_in_fresh_process`` calls any head's signatures in a new Python process that imports
TensorFlow only (no project code, no Keras 2 switch), as a TF Serving user's code would: every
head's export is tested through it.

Test and benchmark support only: nothing in the server imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from .client import predict_request
from .contract import (
    ANN_DIRECTORY,
    DEFAULT_K,
    RECOMMEND,
    RETRIEVAL,
    SCORE,
    SERVING_DEFAULT,
    USER_QUERY,
    WARMUP_FILE,
    string_array,
    warmup_inputs,
)



@dataclasses.dataclass(frozen=True)
class ToyCatalogue:
    """Users, items and their vectors.

    Args:
        user_ids: string [U].
        item_ids: string [N].
        item_categories: string [N], each item's category.
        user_vectors: float32 [U, D].
        item_vectors: float32 [N, D].
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    item_categories: np.ndarray
    user_vectors: np.ndarray
    item_vectors: np.ndarray

    @classmethod
    def random(cls, seed: int = 0, n_users: int = 20, n_items: int = 40, dim: int = 8,
               n_categories: int = 3) -> ToyCatalogue:
        """A catalogue with normal random vectors; items cycle through ``n_categories``."""
        rng = np.random.default_rng(seed)
        return cls(
            user_ids=np.array([f"u{u}" for u in range(n_users)]),
            item_ids=np.array([f"i{i}" for i in range(n_items)]),
            item_categories=np.array([f"c{i % n_categories}" for i in range(n_items)]),
            user_vectors=rng.normal(size=(n_users, dim)).astype(np.float32),
            item_vectors=rng.normal(size=(n_items, dim)).astype(np.float32),
        )

    @property
    def categories(self) -> list[str]:
        return sorted(set(self.item_categories.tolist()))


def _lookup_table(keys: np.ndarray) -> tf.lookup.StaticHashTable:
    """string key -> its row index, -1 for unknown keys."""
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys), tf.range(len(keys), dtype=tf.int64))
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


def _broadcast_rows(tensor: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
    """Repeats a batch-size-1 input over the batch (the contract's broadcasting rule)."""
    rows = tf.shape(tensor)[0]
    return tf.cond(rows == 1,
                   lambda: tf.repeat(tensor, batch_size, axis=0),
                   lambda: tensor)


class ToyRecommender(tf.Module):
    """The contract's signatures over a :class:`ToyCatalogue` (see the module docstring)."""

    def __init__(self, catalogue: ToyCatalogue):
        super().__init__()
        self.n_items = len(catalogue.item_ids)
        self.user_table = _lookup_table(catalogue.user_ids)
        self.item_table = _lookup_table(catalogue.item_ids)
        self.category_table = _lookup_table(np.array(catalogue.categories))
        self.user_vectors = tf.Variable(catalogue.user_vectors, trainable=False)
        self.item_vectors = tf.Variable(catalogue.item_vectors, trainable=False)
        self.item_ids = tf.constant(catalogue.item_ids)
        self.item_categories = tf.constant(catalogue.item_categories)
        self.cold_start_query = tf.Variable(catalogue.user_vectors.mean(axis=0), trainable=False)

    @tf.function(input_signature=USER_QUERY.input_signature())
    def user_query(self, user_id):
        """user_id string [B] -> query float32 [B, D], cold_start bool [B], seen_item_ids
        string [B, 0] (the toy's users have bought nothing)."""
        index = self.user_table.lookup(user_id)
        cold_start = index < 0
        known = tf.gather(self.user_vectors, tf.maximum(index, 0))
        cold = tf.broadcast_to(self.cold_start_query, tf.shape(known))
        query = tf.where(cold_start[:, None], cold, known)
        return {"query": query, "cold_start": cold_start,
                "seen_item_ids": tf.fill(tf.stack([tf.shape(user_id)[0], 0]), "")}

    @tf.function(input_signature=SCORE.input_signature())
    def score(self, user_id, item_ids):
        """user_id string [B], item_ids string [B, N] -> scores float32 [B, N], cold_start [B]."""
        index = self.item_table.lookup(item_ids)
        check = tf.debugging.assert_non_negative(
            index, message="unknown item id in item_ids")
        with tf.control_dependencies([check]):
            items = tf.gather(self.item_vectors, index)
        user = self.user_query(user_id)
        scores = tf.einsum("bd,bnd->bn", user["query"], items)
        return {"scores": scores, "cold_start": user["cold_start"]}

    @tf.function(input_signature=RECOMMEND.input_signature())
    def recommend(self, user_id, k=RECOMMEND.default("k"),
                  category=RECOMMEND.default("category"),
                  exclude_item_ids=RECOMMEND.default("exclude_item_ids"),
                  exclude_seen=RECOMMEND.default("exclude_seen")):
        """The contract's ``recommend``: top-k item ids and scores per user, padded rows.

        The argument defaults are saved as the SignatureDef's ``defaults``, which TF Serving
        (and our server) use for inputs a request leaves out. ``exclude_seen`` is accepted and
        changes nothing: the toy's users have bought nothing.
        """
        del exclude_seen
        batch_size = tf.reduce_max(tf.stack([
            tf.shape(user_id)[0], tf.shape(k)[0], tf.shape(category)[0],
            tf.shape(exclude_item_ids)[0]]))
        k = _broadcast_rows(k, batch_size)
        category = _broadcast_rows(category, batch_size)
        exclude_item_ids = _broadcast_rows(exclude_item_ids, batch_size)
        checks = [
            tf.debugging.assert_greater_equal(k, 1, message=f"k must be in [1, {self.n_items}]"),
            tf.debugging.assert_less_equal(
                k, self.n_items, message=f"k must be in [1, {self.n_items}]"),
            tf.debugging.assert_equal(
                tf.logical_or(category == "", self.category_table.lookup(category) >= 0), True,
                message="unknown category"),
        ]
        with tf.control_dependencies(checks):
            user = self.user_query(_broadcast_rows(user_id, batch_size))
        scores = tf.matmul(user["query"], self.item_vectors, transpose_b=True)
        allowed = tf.logical_or(category[:, None] == "", category[:, None] == self.item_categories)
        excluded = self._excluded(exclude_item_ids, batch_size)
        scores = tf.where(tf.logical_and(allowed, tf.logical_not(excluded)), scores, -np.inf)
        top_scores, top_index = tf.math.top_k(scores, k=tf.reduce_max(k))
        within_k = tf.range(tf.reduce_max(k))[None, :] < k[:, None]
        keep = tf.logical_and(within_k, top_scores > -np.inf)
        return {
            "item_ids": tf.where(keep, tf.gather(self.item_ids, top_index), ""),
            "scores": tf.where(keep, top_scores, -np.inf),
            "cold_start": user["cold_start"],
        }

    def _excluded(self, exclude_item_ids: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
        """bool [B, N]: the items each row excludes, scattered by row (memory B x (N + M), not
        the B x N x M of comparing every item with every exclusion)."""
        rows = self.item_table.lookup(exclude_item_ids)  # [B, M], -1 for "" and unknown ids
        batch_rows = tf.broadcast_to(tf.range(batch_size, dtype=tf.int64)[:, None],
                                     tf.shape(rows, out_type=tf.int64))
        known = rows >= 0
        pairs = tf.stack([tf.boolean_mask(batch_rows, known), tf.boolean_mask(rows, known)],
                         axis=1)
        counts = tf.scatter_nd(pairs, tf.ones(tf.shape(pairs)[:1], tf.int32),
                               tf.stack([tf.cast(batch_size, tf.int64),
                                         tf.cast(self.n_items, tf.int64)]))
        return counts > 0


def save(model: ToyRecommender, path: str) -> None:
    """Saves ``model`` with the contract's signatures (``recommend`` is also the default)."""
    signatures = {signature.name: getattr(model, signature.name)
                  for signature in RETRIEVAL.signatures}
    signatures[SERVING_DEFAULT] = signatures[RETRIEVAL.default]
    tf.saved_model.save(model, path, signatures=signatures)


def warmup_requests(model_name: str, n_items: int = 40) -> list[predict_pb2.PredictRequest]:
    """One Predict request per signature, as the export writes them (``contract.warmup_inputs``:
    two known users and an unknown one)."""
    inputs = warmup_inputs(["u0", "u1"], [f"i{item}" for item in range(n_items)])
    return [predict_request(model_name, tensors, signature)
            for signature, tensors in inputs.items()]


def write_warmup(path: str, requests: list[predict_pb2.PredictRequest]) -> None:
    """Writes ``requests`` as TF Serving's warm-up file (TFRecord of PredictionLog)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def replay_warmup(version: str) -> list[str]:
    """Loads the SavedModel at ``version`` and replays its warm-up records through its
    signatures, as TF Serving does at load time; returns the signature names replayed, in the
    file's order (an error in a request propagates)."""
    model = tf.saved_model.load(str(version))
    replayed = []
    for record in tf.data.TFRecordDataset(os.path.join(str(version), WARMUP_FILE)):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
        model.signatures[request.model_spec.signature_name](**inputs)
        replayed.append(request.model_spec.signature_name)
    return replayed


def write_ann_assets(catalogue: ToyCatalogue, directory: str) -> None:
    """Writes the item vectors as ``items.npz`` (what the tests' stand-in AnnIndex reads)."""
    os.makedirs(directory, exist_ok=True)
    np.savez(os.path.join(directory, "items.npz"), item_ids=catalogue.item_ids,
             item_categories=catalogue.item_categories, item_vectors=catalogue.item_vectors)


def write_version(source: ToyRecommender | str, model_dir: str, version: int, *,
                  warmup: bool = True, catalogue: ToyCatalogue | None = None) -> str:
    """Writes version ``version`` under ``model_dir`` atomically and returns its path.

    Args:
        source: a model to save, or the path of an already saved version to copy (faster).
        model_dir: ``<base>/<model>``.
        version: the integer version.
        warmup: write ``assets.extra/tf_serving_warmup_requests`` (when saving a model).
        catalogue: also write ``assets.extra/ann/`` from this catalogue.
    """
    os.makedirs(model_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    if isinstance(source, str):
        shutil.rmtree(staging)
        shutil.copytree(source, staging)
    else:
        save(source, staging)
        if warmup:
            write_warmup(os.path.join(staging, WARMUP_FILE),
                         warmup_requests(os.path.basename(model_dir), source.n_items))
    if catalogue is not None:
        write_ann_assets(catalogue, os.path.join(staging, ANN_DIRECTORY))
    final = os.path.join(model_dir, str(version))
    os.rename(staging, final)
    return final


def write_models_config(base: str, models: dict[str, str | None],
                        container_root: str = "/models") -> str:
    """Writes ``<base>/models.config`` and returns its path.

    Args:
        base: the export base.
        models: model name -> extra ModelConfig text (e.g. ``'model_version_policy { all {} }'``)
            or None.
        container_root: base paths are written as ``<container_root>/<name>``, as the export does.
    """
    config = model_server_config_pb2.ModelServerConfig()
    for name, extra in models.items():
        entry = config.model_config_list.config.add(
            name=name, base_path=f"{container_root}/{name}", model_platform="tensorflow")
        if extra:
            text_format.Merge(extra, entry)
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, "models.config")
    staging = path + ".tmp"
    with open(staging, "w") as handle:
        handle.write(text_format.MessageToString(config))
    os.replace(staging, path)
    return path


def recommend_in_process(model, user_ids, k: int = DEFAULT_K, category: str = "",
                         exclude: list | None = None) -> dict[str, np.ndarray]:
    """Calls a loaded SavedModel's ``recommend`` signature directly, every input given (the
    reference a server's answer must equal)."""
    given = {"user_id": string_array(user_ids), "k": np.array([k], np.int32),
             "category": string_array([category]),
             "exclude_item_ids": np.zeros((1, 0), object) if exclude is None
             else string_array(exclude)}
    inputs = {tensor.name: tf.constant(given[tensor.name], tensor.dtype)
              if tensor.name in given else tensor.default_tensor()
              for tensor in RECOMMEND.inputs}
    outputs = model.signatures[RECOMMEND.name](**inputs)
    return {alias: tensor.numpy() for alias, tensor in outputs.items()}


class ExactAnnIndex:
    """A stand-in for ``tfrec_fashion_serving.ann.AnnIndex`` with its interface, for tests: exact
    search over the item vectors :func:`write_ann_assets` saved.

    ``load(directory)``; ``search(queries float32 [B, D], k int32 [B], category bytes [B] (b""
    = any), exclude bytes [B, M]) -> (item_ids object array of bytes [B, K], scores float32
    [B, K])`` with K = max(k), rows padded with b"" and -inf like ``recommend``; ValueError for
    k out of [1, N].
    """

    def __init__(self, item_ids: np.ndarray, item_categories: np.ndarray,
                 item_vectors: np.ndarray):
        self.item_ids = np.char.encode(item_ids.astype(str)).astype(object)
        self.item_categories = np.char.encode(item_categories.astype(str)).astype(object)
        self.item_vectors = item_vectors

    @classmethod
    def load(cls, directory: str) -> ExactAnnIndex:
        data = np.load(os.path.join(directory, "items.npz"))
        return cls(data["item_ids"], data["item_categories"], data["item_vectors"])

    def search(self, queries: np.ndarray, k: np.ndarray, category: np.ndarray,
               exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if np.any(k < 1) or np.any(k > len(self.item_ids)):
            raise ValueError(f"k must be in [1, {len(self.item_ids)}]; received k={k.tolist()}")
        width = int(k.max())
        item_ids = np.full((len(queries), width), b"", dtype=object)
        scores = np.full((len(queries), width), -np.inf, dtype=np.float32)
        for row, query in enumerate(queries):
            excluded = set(exclude[row])
            allowed = np.array([category[row] in (b"", item_category) and item not in excluded
                                for item, item_category in zip(self.item_ids,
                                                               self.item_categories)])
            row_scores = np.where(allowed, self.item_vectors @ query, -np.inf)
            best = np.argsort(-row_scores, kind="stable")[:k[row]]
            best = best[row_scores[best] > -np.inf]
            item_ids[row, :len(best)] = self.item_ids[best]
            scores[row, :len(best)] = row_scores[best]
        return item_ids, scores


_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    version, folder = sys.argv[1], sys.argv[2]
    model = tf.saved_model.load(version)
    requests = np.load(f"{folder}/requests.npz", allow_pickle=True)
    answers = {}
    for key in requests.files:
        signature, name = key.split("/", 1)
        answers.setdefault(signature, {})[name] = tf.constant(requests[key])
    outputs = {}
    for signature, inputs in answers.items():
        for name, value in model.signatures[signature](**inputs).items():
            outputs[f"{signature}/{name}"] = value.numpy()
    np.savez(f"{folder}/answers.npz", **outputs)
    print(json.dumps(sorted(m for m in sys.modules if m.startswith(("tfrec_fashion",
                                                                    "tensorflow_recommenders")))))
""")


def answers_in_fresh_process(version_dir: str, requests: dict[str, dict[str, np.ndarray]],
                             timeout: float = 300.0
                             ) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """Calls each signature of the SavedModel in ``version_dir`` with its inputs in a new
    process that imports TensorFlow only.

    Args:
        version_dir: an exported version (any head).
        requests: signature name -> input name -> array (strings as ``string_array`` gives).
        timeout: seconds before the process is killed.

    Returns:
        (signature -> output name -> array, the project modules the process imported: empty
        when the SavedModel needs no project code).
    """
    with tempfile.TemporaryDirectory() as folder:
        np.savez(os.path.join(folder, "requests.npz"),
                 **{f"{signature}/{name}": value for signature, inputs in requests.items()
                    for name, value in inputs.items()})
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TF_USE_LEGACY_KERAS", None)  # a plain TensorFlow user
        done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(version_dir), folder],
                              capture_output=True, text=True, env=env, cwd=folder,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"the fresh process failed:\n{done.stderr[-3000:]}")
        answers: dict[str, dict[str, np.ndarray]] = {}
        with np.load(os.path.join(folder, "answers.npz"), allow_pickle=True) as stored:
            for key in stored.files:
                signature, name = key.split("/", 1)
                answers.setdefault(signature, {})[name] = stored[key]
    return answers, json.loads(done.stdout.strip().splitlines()[-1])
