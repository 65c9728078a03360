"""Which ops a SavedModel needs, and whether the stock TensorFlow Serving binary has them all.

The stock ``tensorflow/serving`` image links TensorFlow's core op registry and nothing else, so a
SavedModel that uses a custom op (TFRS's ScaNN layer needs ``Scann>ScannSearchBatched``, TF
Addons ``Addons>...``) loads in Python after an import but fails in TF Serving with
"Op type not registered". This module reads ``saved_model.pb`` as a protocol buffer, without
loading the model (loading would need the custom ops), and lists every op type its graphs use:
each meta graph's top-level nodes and every function of its library, which holds the signatures'
bodies and every function they call (nested tf.functions, cond / while branches).

An op counts as stock when TensorFlow's op registry in this process knows it and its name has
no ``>`` (custom-op namespace; a process that loaded a custom-op library has those ops
registered too, so the registry alone would not tell). The registry checked is this process's
TensorFlow (``tf.__version__``), which is what the stock ``tensorflow/serving`` image of the same
version links. A custom op without a namespace whose library this process loaded (e.g. by
importing tensorflow_text) would pass; run the check in a process that imports TensorFlow alone
to rule that out.

    report = check_stock_ops("exports/bpr_mf/1")
    print(format_report(report))   # 57 op types (1,234 nodes), all in TensorFlow 2.21.0's ...
    assert_stock_ops("exports/bpr_mf/1")   # ValueError naming the offending ops, if any
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from pathlib import Path

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

SAVED_MODEL_NAME = "saved_model.pb"
NAMESPACE_SEPARATOR = ">"


def _read_saved_model(directory: str | Path) -> saved_model_pb2.SavedModel:
    """The ``SavedModel`` proto of ``<directory>/saved_model.pb``, else a clear error."""
    path = Path(directory) / SAVED_MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no SavedModel at {str(directory)!r}: {str(path)!r} not found")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except DecodeError as error:
        raise ValueError(f"{str(path)!r} is not a SavedModel proto: {error}") from error
    # Unrelated bytes may still parse (as unknown fields); a SavedModel has a meta graph.
    if not saved_model.meta_graphs:
        raise ValueError(f"{str(path)!r} is not a SavedModel proto: it holds no meta graph")
    return saved_model


def saved_model_ops(directory: str | Path) -> dict[str, int]:
    """Op type -> number of nodes of that type in the SavedModel at ``directory``, sorted by name.

    Counts every meta graph's top-level ``graph_def.node`` and the ``node_def`` of every function
    in ``graph_def.library`` (the library is flat: nested functions are listed there too). A node
    whose op is the name of a library function is a call of that function, not an op, and is
    left out: the function's own nodes are counted with the library.

    Raises:
        FileNotFoundError: ``<directory>/saved_model.pb`` does not exist.
        ValueError: the file is not a SavedModel proto.
    """
    counts: collections.Counter[str] = collections.Counter()
    for meta_graph in _read_saved_model(directory).meta_graphs:
        graph_def = meta_graph.graph_def
        functions = {function.signature.name for function in graph_def.library.function}
        node_lists = [graph_def.node] + [f.node_def for f in graph_def.library.function]
        for nodes in node_lists:
            counts.update(node.op for node in nodes if node.op not in functions)
    return dict(sorted(counts.items()))


def non_stock_ops(ops: Iterable[str]) -> list[str]:
    """The op names (sorted) that the stock TF Serving binary would not know.

    An op is not stock when its name holds a custom-op namespace (``Scann>ScannSearchBatched``)
    or when this process's TensorFlow op registry (``tf.__version__``, the core registry the
    stock ``tensorflow/serving`` image of that version links) does not know it.

    Args:
        ops: op names, e.g. the dict of ``saved_model_ops`` (its keys are used).
    """
    return sorted(name for name in set(ops)
                  if NAMESPACE_SEPARATOR in name or op_def_registry.get(name) is None)


def check_stock_ops(directory: str | Path) -> dict:
    """A JSON-able report of the ops of the SavedModel at ``directory``::

        {"tensorflow": "2.21.0", "op_types": 57, "nodes": 1234,
         "ops": {"MatMul": 3, ...}, "non_stock": ["Scann>ScannSearchBatched", ...]}
    """
    ops = saved_model_ops(directory)
    return {"tensorflow": tf.__version__, "op_types": len(ops), "nodes": sum(ops.values()),
            "ops": ops, "non_stock": non_stock_ops(ops)}


def format_report(report: Mapping) -> str:
    """A short human summary of a ``check_stock_ops`` report."""
    registry = f"TensorFlow {report['tensorflow']}'s op registry"
    summary = f"{report['op_types']:,} op types ({report['nodes']:,} nodes)"
    if not report["non_stock"]:
        return f"{summary}, all in {registry}; no custom-op namespaces"
    offenders = []
    for name in report["non_stock"]:
        count = report["ops"].get(name, 0)
        detail = f"{count:,} node" + ("" if count == 1 else "s")
        if NAMESPACE_SEPARATOR in name:
            namespace = name.split(NAMESPACE_SEPARATOR, 1)[0]
            detail += f", custom-op namespace {namespace!r}"
        offenders.append(f"{name} ({detail})")
    return (f"{summary}; {len(offenders)} not stock (custom-op namespace or not in {registry}): "
            f"{', '.join(offenders)}\nthe stock TF Serving binary would fail with "
            "\"Op type not registered\"")


def assert_stock_ops(directory: str | Path) -> dict:
    """The ``check_stock_ops`` report when every op is stock, else ValueError naming the others.

    Raises:
        ValueError: an op is in a custom-op namespace or not in this TensorFlow's op registry.
        FileNotFoundError: ``<directory>/saved_model.pb`` does not exist.
    """
    report = check_stock_ops(directory)
    if report["non_stock"]:
        raise ValueError(f"SavedModel {str(directory)!r} uses ops the stock TF Serving binary "
                         f"lacks; it would fail with \"Op type not registered\": "
                         f"{', '.join(report['non_stock'])}\n{format_report(report)}")
    return report
