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
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.framework import op_def_registry

SAVED_MODEL_NAME = "saved_model.pb"
NAMESPACE_SEPARATOR = ">"


def read_saved_model(directory: str | Path) -> saved_model_pb2.SavedModel:
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
    for meta_graph in read_saved_model(directory).meta_graphs:
        counts.update(node.op for node in graph_def_nodes(meta_graph.graph_def))
    return dict(sorted(counts.items()))


def graph_def_nodes(graph_def: graph_pb2.GraphDef,
                    function_names: Iterable[str] | None = None) -> Iterator[node_def_pb2.NodeDef]:
    """Every op node of ``graph_def``: its top-level nodes and the nodes of its library functions.

    A node whose op is the name of a library function is a call of that function, not an op, and
    is left out (the function's own nodes are yielded with the library). With ``function_names``,
    only those library functions are walked, and the top-level nodes are left out: the caller has
    chosen a part of the graph (``signature_nodes``).
    """
    library = graph_def.library.function
    functions = {function.signature.name for function in library}
    if function_names is None:
        node_lists = [graph_def.node] + [f.node_def for f in library]
    else:
        chosen = set(function_names)
        node_lists = [f.node_def for f in library if f.signature.name in chosen]
    for nodes in node_lists:
        yield from (node for node in nodes if node.op not in functions)


def _called_functions(node: node_def_pb2.NodeDef, functions: set[str]) -> set[str]:
    """The library functions a node calls: its op (a direct call) and its function-valued attrs
    (``f`` of PartitionedCall, the branches of If, the body and cond of While)."""
    called = {node.op} & functions
    for value in node.attr.values():
        called.update(name for name in [value.func.name, *(f.name for f in value.list.func)]
                      if name in functions)
    return called


def signature_nodes(meta_graph: meta_graph_pb2.MetaGraphDef,
                    signature: str) -> list[node_def_pb2.NodeDef]:
    """The op nodes that answering ``signature`` can run: the top-level nodes its outputs depend
    on (inputs and control inputs, transitively) and every node of the functions those call,
    nested calls and cond / while branches included. The checkpoint save / restore functions a
    SavedModel also holds are reached from no signature and are left out.
    """
    graph_def = meta_graph.graph_def
    by_name = {node.name: node for node in graph_def.node}
    library = {f.signature.name: f for f in graph_def.library.function}
    names = set(library)
    outputs = meta_graph.signature_def[signature].outputs.values()
    pending = [tensor.name.lstrip("^").split(":")[0] for tensor in outputs]
    top, called = {}, set()
    while pending:  # the top-level graph, backwards from the outputs
        node = by_name.get(pending.pop())
        if node is None or node.name in top:
            continue
        top[node.name] = node
        called |= _called_functions(node, names)
        pending.extend(name.lstrip("^").split(":")[0] for name in node.input)
    walked: set[str] = set()
    while called - walked:  # the library, through every call
        name = (called - walked).pop()
        walked.add(name)
        for node in library[name].node_def:
            called |= _called_functions(node, names)
    return ([node for node in top.values() if node.op not in names]
            + list(graph_def_nodes(graph_def, walked)))


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
