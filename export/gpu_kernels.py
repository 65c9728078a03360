"""Which ops of a graph have a GPU kernel in this TensorFlow build, checked without a GPU.

TensorFlow places an op on the GPU only when a kernel for it is registered for the GPU (or for
every device, ``DEFAULT``) *and* that kernel accepts the node's dtypes (a kernel def carries
constraints such as ``T in {float, half}``); otherwise the op runs on the CPU, and the tensors
it touches cross the PCIe bus each step. The kernel registry lives in the TensorFlow library, not
in the driver: the pip ``tensorflow`` wheel is a CUDA build (``tf.sysconfig.get_build_info()``
says ``is_cuda_build``) and registers its GPU kernels on a machine without a GPU, so the check
below runs anywhere.

Two kinds of graph are checked, walked with ``graph_ops``'s node walking:

- a Keras model's training step: the function ``fit`` runs each step
  (``model.make_train_function()``, traced on one batch of the training dataset), with its
  forward pass, gradients, optimizer update and any distribution-strategy reduction;
- a SavedModel's signatures: the nodes each signature can run (``graph_ops.signature_nodes``),
  not the checkpoint save / restore functions every SavedModel also holds.

Ops without a GPU kernel are explained by ``CPU_BY_DESIGN`` (op -> why it is right on the CPU),
or, where GPU kernels exist but refuse the node's dtype, by ``HOST_DTYPES`` (string, int32, bool:
dtype -> why); any other is flagged, and a test fails when a model grows one, which would
otherwise run on the CPU unseen. A kernel is necessary, not sufficient: the placer still keeps
an op beside a CPU resource it reads (a hash table, an int32 variable).

    report = saved_model_gpu_report("exports/dvbpr/1")
    print(format_gpu_report(report))  # 53 op types (1,227 nodes), TensorFlow 2.21.0 (CUDA
                                      # build): 11 run on the CPU, 0 flagged, then one per op
    assert_gpu_kernels(report)        # ValueError naming any flagged op
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2
from tensorflow.python.framework import kernels, op_def_registry

from tfrec_fashion_export.graph_ops import graph_def_nodes, read_saved_model, signature_nodes

GPU_DEVICE_TYPES = ("GPU", "DEFAULT")  # DEFAULT kernels serve every device, the GPU included

_TABLE = ("the serving head's string id -> row lookup: TensorFlow's hash tables are host-side "
          "resources (one lookup per request; the rows it selects go on to the GPU)")
_RAGGED = ("the serving head's ragged lists of int ids (a customer's seen items; the partitioned "
           "index's probed rows), built per request on the host before the GPU scores them")
CPU_BY_DESIGN: dict[str, str] = {
    "HashTableV2": _TABLE,
    "LookupTableFindV2": _TABLE,
    "LookupTableImportV2": _TABLE + "; filled once, when the SavedModel loads",
    "LookupTableSizeV2": _TABLE,
    "RaggedGather": _RAGGED,
    "RaggedRange": _RAGGED,
    "RaggedTensorToTensor": _RAGGED,
    "DenseToDenseSetOperation": ("a Keras metric's check that its sample weights broadcast "
                                 "(weights_broadcast_ops.assert_broadcastable, PAN's outfit "
                                 "ranking): a set difference of int32 shape vectors, on the host"),
    "ScaleAndTranslate": ("the antialiased resize of complete the look's `similar` request "
                          "image (tf.image.resize(antialias=True)): one image per request"),
}
# A node whose GPU kernels exist but refuse its dtype runs on the host when the dtype is one
# TensorFlow keeps in host memory anyway.
HOST_DTYPES: dict[str, str] = {
    "string": ("string tensors (ids; assert messages, such as tf.nn.compute_average_loss's in "
               "the training step) live in host memory: TensorFlow has no GPU strings"),
    "int32": ("TensorFlow keeps int32 tensors in host memory by convention (shapes, indices): "
              "int32 variables and their gathers (the serving head's id -> category / row "
              "tables) have no GPU kernel"),
    "bool": ("TensorFlow registers no GPU gather of a bool variable (ResourceGatherNd): the "
             "compatibility head's category-partner matrix is read on the host, a few pairs "
             "per request"),
}


def _attr_types(node: node_def_pb2.NodeDef, name: str) -> list[int] | None:
    """The dtype(s) a node's type attr ``name`` holds (its op's default when the node leaves it
    unset), or None when it holds no dtype."""
    if name in node.attr:
        value = node.attr[name]
    else:
        op_def = op_def_registry.get(node.op)
        defaults = {attr.name: attr.default_value for attr in (op_def.attr if op_def else ())
                    if attr.HasField("default_value")}
        if name not in defaults:
            return None
        value = defaults[name]
    if value.HasField("type"):
        return [value.type]
    if value.HasField("list") and value.list.type:
        return list(value.list.type)
    return None


def _accepts(kernel, node: node_def_pb2.NodeDef) -> bool:
    """Whether a kernel def's dtype constraints admit the node's dtypes."""
    for constraint in kernel.constraint:
        types = _attr_types(node, constraint.name)
        allowed = set(constraint.allowed_values.list.type)
        if types is not None and allowed and not set(types) <= allowed:
            return False
    return True


def _constrained_dtypes(node: node_def_pb2.NodeDef, kernels_of_op) -> dict[str, list[str]]:
    """The node's dtype attrs that the op's kernels constrain, e.g. ``{"T": ["int64"]}``."""
    names = sorted({c.name for k in kernels_of_op for c in k.constraint})
    found = {name: _attr_types(node, name) for name in names}
    return {name: [tf.dtypes.as_dtype(t).name for t in types if t != types_pb2.DT_INVALID]
            for name, types in found.items() if types is not None}


@functools.lru_cache(maxsize=None)
def _gpu_kernels(op: str) -> tuple:
    """The op's kernel defs for the GPU (device type GPU or DEFAULT), read once per op."""
    registered = kernels.get_registered_kernels_for_op(op).kernel
    return tuple(kernel for kernel in registered if kernel.device_type in GPU_DEVICE_TYPES)


def missing_gpu_kernel(node: node_def_pb2.NodeDef) -> tuple[str, list[str]] | None:
    """Why ``node`` would run on the CPU and the dtypes to blame: ``("no GPU kernel", [])`` or
    ``("no GPU kernel for T=string Tmultiples=int32", ["string"])``; None when a registered GPU
    kernel accepts it."""
    gpu = _gpu_kernels(node.op)
    if not gpu:
        return "no GPU kernel", []
    if any(_accepts(kernel, node) for kernel in gpu):
        return None
    dtypes = _constrained_dtypes(node, gpu)
    text = " ".join(f"{name}={','.join(types)}" for name, types in dtypes.items())
    # The dtypes no GPU kernel takes for their attr (Tile's T=string, not its Tmultiples=int32);
    # when each is taken by some kernel but no kernel takes them together, all of them.
    allowed = collections.defaultdict(set)
    for kernel in gpu:
        for constraint in kernel.constraint:
            allowed[constraint.name].update(
                tf.dtypes.as_dtype(t).name for t in constraint.allowed_values.list.type)
    refused = {t for name, types in dtypes.items() for t in types if t not in allowed[name]}
    return f"no GPU kernel for {text}", sorted(refused or
                                               {t for types in dtypes.values() for t in types})


def _by_design(op: str, dtypes: list[str], by_design: Mapping[str, str],
               host_dtypes: Mapping[str, str]) -> str | None:
    """The reason an op on the CPU belongs there, or None (flagged)."""
    if op in by_design:
        return by_design[op]
    host = [dtype for dtype in dtypes if dtype in host_dtypes]
    return host_dtypes[host[0]] if host else None


def gpu_kernel_report(nodes: Iterable[node_def_pb2.NodeDef],
                      by_design: Mapping[str, str] = CPU_BY_DESIGN,
                      host_dtypes: Mapping[str, str] = HOST_DTYPES) -> dict:
    """A JSON-able report of which ``nodes`` have a GPU kernel::

        {"tensorflow": "2.21.0", "cuda_build": True, "op_types": 57, "nodes": 1234,
         "on_cpu": {"LookupTableFindV2": {"nodes": 3, "why": {
                        "no GPU kernel": "the serving head's string id -> row lookup ..."}},
                    "Const": {"nodes": 9, "why": {
                        "no GPU kernel for dtype=string": "string tensors (ids) live ..."}},
                    "SomeOp": {"nodes": 1, "why": {"no GPU kernel": None}}},
         "flagged": ["SomeOp"]}

    ``on_cpu`` holds every op type with a node no GPU kernel accepts (nodes of that type whose
    dtypes a GPU kernel accepts are not counted), and for each way its nodes miss a GPU kernel,
    the reason that is right: ``by_design`` (op -> reason), else for a refused dtype
    ``host_dtypes`` (dtype -> reason), else None. ``flagged``: the op types with a None.
    """
    counts: collections.Counter[str] = collections.Counter()
    on_cpu: dict[str, dict] = {}
    for node in nodes:
        counts[node.op] += 1
        missing = missing_gpu_kernel(node)
        if missing is None:
            continue
        why, dtypes = missing
        entry = on_cpu.setdefault(node.op, {"nodes": 0, "why": {}})
        entry["nodes"] += 1
        entry["why"].setdefault(why, _by_design(node.op, dtypes, by_design, host_dtypes))
    return {"tensorflow": tf.__version__,
            "cuda_build": bool(tf.sysconfig.get_build_info().get("is_cuda_build")),
            "op_types": len(counts), "nodes": sum(counts.values()),
            "on_cpu": dict(sorted(on_cpu.items())),
            "flagged": sorted(op for op, entry in on_cpu.items()
                              if None in entry["why"].values())}


def saved_model_gpu_report(directory: str | Path,
                           by_design: Mapping[str, str] = CPU_BY_DESIGN,
                           host_dtypes: Mapping[str, str] = HOST_DTYPES) -> dict:
    """``gpu_kernel_report`` of every signature of the SavedModel at ``directory`` (load-time
    initialisation, ``__saved_model_init_op``, included), plus ``"signatures"``: for each op on
    the CPU, the signatures that use it.

    Raises:
        FileNotFoundError: ``<directory>/saved_model.pb`` does not exist.
        ValueError: the file is not a SavedModel proto.
    """
    nodes, used_by = [], collections.defaultdict(set)
    for meta_graph in read_saved_model(directory).meta_graphs:
        for signature in meta_graph.signature_def:
            signature_part = signature_nodes(meta_graph, signature)
            nodes.extend(signature_part)
            for node in signature_part:
                used_by[node.op].add(signature)
    report = gpu_kernel_report(nodes, by_design, host_dtypes)
    for op, entry in report["on_cpu"].items():
        entry["signatures"] = sorted(used_by[op])
    return report


def train_step_graph_def(model: tf.keras.Model, dataset: tf.data.Dataset) -> graph_pb2.GraphDef:
    """The graph ``fit`` runs each step for a compiled ``model`` on ``dataset`` (traced, not run:
    the optimizer's slots are created by the trace, no weight moves)."""
    train_function = model.make_train_function(force=True)
    concrete = train_function.get_concrete_function(iter(dataset))
    return concrete.graph.as_graph_def()


def train_step_gpu_report(model: tf.keras.Model, dataset: tf.data.Dataset,
                          by_design: Mapping[str, str] = CPU_BY_DESIGN,
                          host_dtypes: Mapping[str, str] = HOST_DTYPES) -> dict:
    """``gpu_kernel_report`` of ``model``'s training step on ``dataset`` (``model`` compiled)."""
    return gpu_kernel_report(graph_def_nodes(train_step_graph_def(model, dataset)), by_design,
                             host_dtypes)


def format_gpu_report(report: Mapping) -> str:
    """A short human summary of a ``gpu_kernel_report``: one line, then one per op on the CPU."""
    build = "CUDA build" if report["cuda_build"] else "not a CUDA build: no GPU kernels at all"
    summary = (f"{report['op_types']:,} op types ({report['nodes']:,} nodes), TensorFlow "
               f"{report['tensorflow']} ({build}): ")
    on_cpu = report["on_cpu"]
    if not on_cpu:
        return summary + "every op has a GPU kernel"
    lines = [summary + f"{len(on_cpu)} run on the CPU, {len(report['flagged'])} flagged"]
    for op, entry in on_cpu.items():
        where = f" [{', '.join(entry['signatures'])}]" if entry.get("signatures") else ""
        lines.append(f"  {op} ({entry['nodes']:,} nodes){where}")
        for why, reason in entry["why"].items():
            lines.append(f"    {why}: " + (f"by design: {reason}" if reason
                                             else "FLAGGED: not known to belong on the CPU"))
    return "\n".join(lines)


def assert_gpu_kernels(report: Mapping, what: str = "the graph") -> Mapping:
    """``report`` when no op is flagged, else ValueError naming the flagged ops."""
    if report["flagged"]:
        raise ValueError(f"{what} has ops without a GPU kernel that are not known to belong on "
                         f"the CPU: {', '.join(report['flagged'])}\n{format_gpu_report(report)}")
    return report
