"""Writes one version of one model: ``<base>/<model>/<version>/``, all or nothing.

The SavedModel, its warm-up requests and its description are written into
``<base>/<model>/.tmp-<version>-<pid>-<random>/`` and that folder is renamed to ``<version>``
in one ``os.rename`` (atomic on one file system). Servers load integer-named folders only, so a
half-written export is never visible, and an export killed half-way leaves the previous version
serving; its leftover temporary folder is removed by the next export once its process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from tfrec_fashion_export.browse import write_browse_assets
from tfrec_fashion_export.graph_ops import assert_stock_ops, format_report
from tfrec_fashion_export.index import (DEFAULT_TARGET_RECALL, describe_scan,
                                        recall_against_brute_force, refuse_low_recall,
                                        tune_partitioned)
from tfrec_fashion.training.serving_parts import Parts, RetrievalParts
from tfrec_fashion_export.heads import head_of
from tfrec_fashion_export.module import RecommenderModule
from tfrec_fashion_export.tf_serving_config import check_model_name, versions, write_config
from tfrec_fashion_serving import contract
from tfrec_fashion_serving.client import predict_request

WARMUP_FILE = os.path.basename(contract.WARMUP_FILE)
INFO_FILE = os.path.basename(contract.DESCRIPTION_FILE)


def export_parts(parts: Parts, base: str | Path, name: str, version: int | None = None,
                 label: str | None = None, index: str = "brute_force",
                 index_params: dict | None = None, min_recall: float | None = None,
                 run_dir: str | Path | None = None) -> Path:
    """Exports ``parts`` as ``<base>/<name>/<version>/`` and refreshes ``<base>/models.config``.

    Args:
        parts: the trained model's serving parts (``RetrievalParts``, ``CompatibilityParts``:
            its head), as ``serving_parts.load_parts(run_dir)`` reads them.
        base: the export base (created if missing).
        name: the model's serving name.
        version: a positive integer; default one above the newest existing version (1 first).
            An existing version is never overwritten.
        label: optionally a version label (e.g. "stable") pointing at this version.
        index: the index ``recommend`` searches with (the retrieval head; other heads take
            "brute_force" only):
            "brute_force": exact (TFRS BruteForce);
            "partitioned": approximate, ``PartitionedTopK`` inside the SavedModel (stock ops,
            serves in stock TF Serving); its recall@10 against BruteForce on 1,000 users'
            queries is printed and written to the description;
            "scann": exact inside, plus a ScaNN index in ``assets.extra/ann/`` that only our
            server answers ``recommend_approximate`` with (``pip install tfrec-fashion[ann]``);
            "hamming" (the outfit head, models with binary codes such as PAN / FHN):
            ``fill_in_the_blank`` ranks the blank slot's items by Hamming distance of their
            packed codes to the outfit's query code and re-scores the nearest ``rerank``
            exactly; its recall@10 against exact scores is printed and described.
        index_params: the partitioned index's ``PartitionedTopK`` arguments (n_partitions,
            n_probe, rerank, quantization, seed); default the layer's; the Hamming index's
            ``rerank`` (default 100, at least the default k). ``target_recall`` (partitioned
            retrieval index): choose n_probe and rerank as the fastest setting whose recall@10
            meets it on half the customers (``index.tune_partitioned``; the curve is printed and
            described), checked on the other half. Without n_probe or target_recall the index
            probes more than its default until recall@10 reaches 0.9 (``DEFAULT_TARGET_RECALL``).
        min_recall: with "partitioned" or "hamming", refuse the export (nothing written) if
            any measured recall@10 is below this.
        run_dir: the run the parts come from (default ``parts.info["run_dir"]``, which
            ``runs.run_parts`` sets): its thumbnails and attention maps, when it has them, go
            into ``assets.extra/`` for the browse page (``browse.py``).

    Returns:
        The version folder.
    """
    model_dir = Path(base) / check_model_name(name)
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(model_dir)
    existing = versions(model_dir)
    if version is None:
        version = existing[-1] + 1 if existing else 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer. Received: {version!r}")
    final = model_dir / str(version)
    head = head_of(parts)
    if index not in head.indexes:
        raise ValueError(f"index must be one of {head.indexes} for the {parts.HEAD} head. "
                         f"Received: index={index!r}")
    if final.exists():
        raise FileExistsError(f"{final} already exists; versions are never overwritten: "
                              "export a new version (omit the version to take the next one)")
    temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=model_dir))
    try:
        _write_version(parts, temporary, name, version, index, index_params, min_recall)
        write_browse_assets(parts, temporary, run_dir or parts.info.get("run_dir"))
        os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    write_config(Path(base), {name: {label: version}} if label else None)
    return final


def _write_version(parts: Parts, directory: Path, name: str, version: int,
                   index: str, index_params: dict | None, min_recall: float | None) -> None:
    head = head_of(parts)
    index_params = dict(index_params or {})
    target = index_params.pop("target_recall", None)
    if target is not None and (index != "partitioned" or parts.HEAD != RetrievalParts.HEAD):
        raise ValueError("target_recall tunes the retrieval head's partitioned index only")
    # "scann" keeps the exact index inside; index_params on an exact index are refused there.
    module = head.build(parts, "brute_force" if index == "scann" else index, index_params)
    index_info = {"kind": "brute_force"}
    if index != "brute_force" and head.index_report is not None:  # a head's own indexes
        index_info = head.index_report(module, parts, min_recall)
    elif index == "partitioned":
        tune_rows, check_rows = _held_out_halves(len(parts.user_ids))
        tuning = None
        if target is not None or "n_probe" not in index_params:
            tuning = _tune(module, parts, tune_rows, target)
        index_info = module.index.describe()
        if tuning is not None:
            index_info["tuning"] = tuning
        index_info["recall_at_10"] = _check_recall(module, parts, index_info, min_recall,
                                                   check_rows)
    signatures = module.signatures()
    tf.saved_model.save(module, str(directory), signatures=signatures)
    ops = assert_stock_ops(directory)  # a graph stock TF Serving cannot load is never published
    print(f"{name}/{version}: {format_report(ops)}")
    extra = directory / "assets.extra"
    extra.mkdir(exist_ok=True)
    write_warmup_requests(extra / WARMUP_FILE, name, parts)
    ann = None
    if index == "scann":
        from tfrec_fashion_export.ann_index import build_ann_index

        ann = build_ann_index(parts.item_vectors, parts.item_ids, parts.item_categories,
                              extra / "ann")
    info = {**parts.info, "name": name, "version": version, "head": parts.HEAD,
            "signatures": sorted(signatures), "index": index_info, "approximate_index": ann,
            "ops": {key: ops[key] for key in ("tensorflow", "op_types", "nodes", "non_stock")},
            **head.describe(parts),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (extra / INFO_FILE).write_text(json.dumps(info, indent=2))


def _held_out_halves(n_users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Customers' rows in two random halves: one to tune the index on, one to check it on (both
    all rows for a single customer)."""
    rows = np.random.default_rng(seed).permutation(n_users)
    if n_users < 2:
        return rows, rows
    return np.sort(rows[:n_users // 2]), np.sort(rows[n_users // 2:])


def _tune(module: RecommenderModule, parts: RetrievalParts, rows: np.ndarray,
          target: float | None) -> dict:
    """``index.tune_partitioned`` on the customers ``rows``: to ``target`` over every setting,
    or (None) only probing more than built until the default target is met; prints the curve."""
    categories = np.unique(parts.item_categories)
    tuning = tune_partitioned(
        module.index, parts.item_vectors, np.searchsorted(categories, parts.item_categories),
        len(categories), parts.user_vectors[rows],
        None if parts.seen is None else parts.seen[rows],
        target=DEFAULT_TARGET_RECALL if target is None else target, only_raise=target is None)
    print(f"partitioned index tuned to recall@10 >= {tuning['target']} on {len(rows)} "
          f"customers' queries (worst of any category, one category, bought items left out):")
    for point in tuning["curve"]:
        print(f"    n_probe {point['n_probe']:>5}  rerank {point['rerank']:>5}  scanned "
              f"{point['scanned_share']:6.1%}  recall@10 {point['recall']:.3f}  "
              f"{point['queries_per_second']:>9,.0f} queries/s")
    chosen = tuning["chosen"]
    print(f"    chosen: n_probe {chosen['n_probe']}, rerank {chosen['rerank']}"
          + ("" if tuning["met"] else " (the target was not met: the highest recall measured)"))
    return tuning


def _check_recall(module: RecommenderModule, parts: RetrievalParts, described: dict,
                  min_recall: float | None, rows: np.ndarray | None = None) -> dict:
    """Prints (and returns) the partitioned index's recall@10 against BruteForce on the users'
    vectors (``rows`` of them: the customers the index was not tuned on); raises if below
    ``min_recall``. ``described``: the index's ``describe()``."""
    categories = np.unique(parts.item_categories)
    rows = np.arange(len(parts.user_ids)) if rows is None else rows
    recall = recall_against_brute_force(
        module.index, parts.item_vectors, np.searchsorted(categories, parts.item_categories),
        len(categories), parts.user_vectors[rows], None if parts.seen is None else parts.seen[rows])
    seen = (f", {recall['seen_excluded']:.3f} (bought items left out, as recommend does by "
            "default)") if "seen_excluded" in recall else ""
    print(f"partitioned index: {describe_scan(described)}: recall@{recall['k']} against "
          f"BruteForce {recall['any_category']:.3f} (any category), {recall['one_category']:.3f} "
          f"(one category){seen} on {recall['queries']:,} users' queries")
    refuse_low_recall(recall, min_recall, "the partitioned index")
    return recall


def warmup_requests(name: str, parts: Parts) -> list[predict_pb2.PredictRequest]:
    """One Predict request per signature of the parts' head (real ids and one unknown user),
    as TF Serving replays at load time so the first real request does not pay for tracing."""
    inputs = head_of(parts).warmup(parts)
    return [predict_request(name, tensors, signature) for signature, tensors in inputs.items()]


def write_warmup_requests(path: Path, name: str, parts: Parts) -> None:
    """``assets.extra/tf_serving_warmup_requests``: a TFRecord of PredictionLog records."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in warmup_requests(name, parts):
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _remove_abandoned(model_dir: Path) -> None:
    """Removes temporary folders left by exports whose process no longer runs."""
    for path in model_dir.glob(".tmp-*"):
        parts = path.name.split("-")
        pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
        if pid is not None and _alive(pid):
            continue
        print(f"removing the leftover of an interrupted export: {path}")
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
