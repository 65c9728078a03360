"""GPU readiness without a GPU: every op of each fit-trained model family's training step, and of
a retrieval and an outfit export's signatures, has a GPU kernel registered in this TensorFlow
build, except the ops ``gpu_kernels`` explains (``CPU_BY_DESIGN``, ``HOST_DTYPES``); a new op
without a GPU kernel fails here, by name. The kernel registry is the library's, so this runs on
a machine without a GPU (the pip wheel is a CUDA build)."""

import shutil

import pytest
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, node_def_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from tfrec_fashion.cli import main as cli_main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import make_optimizer, train
from tfrec_fashion.training.precision import precision_policy
from tfrec_fashion.training.recipes.base import get_recipe
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export.gpu_kernels import (CPU_BY_DESIGN, HOST_DTYPES, assert_gpu_kernels,
                                              format_gpu_report, gpu_kernel_report,
                                              missing_gpu_kernel, saved_model_gpu_report,
                                              train_step_gpu_report)
from tfrec_fashion_export.runs import export_run

WORLD = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120,
         "mean_interactions_per_user": 12.0, "image_size": 32}
OUTFIT_WORLD = {**WORLD, "n_time_epochs": 1, "outfits_per_user": 10,
                "outfit_compatibility_weight": 3.0}
TRAIN = {"epochs": 1, "batch_size": 64, "steps_per_epoch": 2, "learning_rate": 0.02,
         "early_stopping_patience": 0, "verbose": 0}
# Every fit-trained family (Partial Dual has its own solver: no training step), tiny. PSA-Net
# without customer embeddings (those come from another run); its pair tower is the same.
FAMILIES = {
    "bpr_mf": (WORLD, {"name": "bpr_mf", "latent_dim": 8}),
    "vbpr": (WORLD, {"name": "vbpr"}),
    "dvbpr": (WORLD, {"name": "dvbpr", "backbone": "small_cnn", "embedding_dim": 8}),
    "two_tower": (WORLD, {"name": "two_tower"}),
    "stynet": (WORLD, {"name": "stynet", "embedding_dim": 8, "hidden_units": 16}),
    "pair_compatibility": (WORLD, {"name": "pair_compatibility", "embedding_dim": 4}),
    "psa_net": (WORLD, {"name": "psa_net", "personalised": False, "representation_dim": 4}),
    "pan": (OUTFIT_WORLD, {"name": "pan", "code_bits": 8, "embedding_dim": 8,
                           "backbone": "gap_cnn"}),
    "complete_the_look": (OUTFIT_WORLD, {"name": "complete_the_look", "backbone": "gap_cnn",
                                         "hidden_dim": 16, "embedding_dim": 8,
                                         "similar_image_size": 32}),
}
# tf.nn.compute_average_loss's assert messages (tasks scale the loss by the global batch).
STRING_CONST = {"Const": ["no GPU kernel for dtype=string"]}
# What runs on the CPU, per family: the README's table. Anything else fails the test.
EXPECTED_TRAIN_STEP = {
    "bpr_mf": STRING_CONST, "vbpr": STRING_CONST, "dvbpr": STRING_CONST, "two_tower": {},
    "stynet": {}, "pair_compatibility": STRING_CONST, "psa_net": STRING_CONST,
    "pan": {**STRING_CONST, "DenseToDenseSetOperation": ["no GPU kernel"]},
    "complete_the_look": STRING_CONST,
}


def _config(run_dir, family, **train):
    data, model = FAMILIES[family]
    return from_dict(RunConfig, {"model": model, "data": data, "seed": 0,
                                 "train": {**TRAIN, **train}, "run_dir": str(run_dir)})


def _step_report(config, family):
    """The GPU-kernel report of the training step the harness would run for ``config``, built
    as the harness builds it (under the run's precision policy), traced, not run."""
    recipe = get_recipe(config.model, config.train, config.seed)
    recipe.prepare(config.data.build())
    with precision_policy(config.train.precision):
        model = recipe.build_model()
        model.compile(optimizer=make_optimizer(config.train))
    train_data, _ = recipe.datasets()
    return assert_gpu_kernels(train_step_gpu_report(model, train_data), f"{family}'s step")


def _node(op, **types):
    return node_def_pb2.NodeDef(name="n", op=op, attr={
        name: attr_value_pb2.AttrValue(type=dtype) for name, dtype in types.items()})


# ----------------------------------------------------------------------------- the registry
def test_this_build_registers_gpu_kernels_without_a_gpu():
    assert tf.sysconfig.get_build_info()["is_cuda_build"]
    assert missing_gpu_kernel(_node("MatMul", T=types_pb2.DT_FLOAT)) is None
    assert missing_gpu_kernel(_node("Conv2D", T=types_pb2.DT_FLOAT)) is None
    # A DEFAULT kernel serves the GPU: ReadVariableOp registers no "GPU" one.
    assert missing_gpu_kernel(_node("ReadVariableOp", dtype=types_pb2.DT_FLOAT)) is None


def test_missing_kernels_and_refused_dtypes_are_told_apart():
    assert missing_gpu_kernel(_node("LookupTableFindV2")) == ("no GPU kernel", [])
    # ResourceGather has GPU kernels, for float but not for int32 variables.
    assert missing_gpu_kernel(_node("ResourceGather", dtype=types_pb2.DT_FLOAT,
                                    Tindices=types_pb2.DT_INT32)) is None
    assert missing_gpu_kernel(_node("ResourceGather", dtype=types_pb2.DT_INT32,
                                    Tindices=types_pb2.DT_INT32)) == (
        "no GPU kernel for Tindices=int32 dtype=int32", ["int32"])
    # Tile's GPU kernels take int32 multiples but no strings: the string is to blame.
    assert missing_gpu_kernel(_node("Tile", T=types_pb2.DT_STRING,
                                    Tmultiples=types_pb2.DT_INT32)) == (
        "no GPU kernel for T=string Tmultiples=int32", ["string"])
    # An attr the node leaves unset is its op's default (Cast's Truncate, here no constraint).
    assert missing_gpu_kernel(_node("Cast", SrcT=types_pb2.DT_FLOAT,
                                    DstT=types_pb2.DT_HALF)) is None


def test_unexplained_ops_are_flagged_and_explained_ones_carry_their_reason():
    nodes = [_node("MatMul", T=types_pb2.DT_FLOAT), _node("LookupTableFindV2"),
             _node("Const", dtype=types_pb2.DT_STRING), _node("StringToHashBucketFast"),
             _node("StringToHashBucketFast")]
    report = gpu_kernel_report(nodes)
    assert (report["op_types"], report["nodes"]) == (4, 5)
    assert report["on_cpu"]["LookupTableFindV2"]["why"] == {
        "no GPU kernel": CPU_BY_DESIGN["LookupTableFindV2"]}
    assert report["on_cpu"]["Const"]["why"] == {
        "no GPU kernel for dtype=string": HOST_DTYPES["string"]}
    assert report["on_cpu"]["StringToHashBucketFast"] == {"nodes": 2,
                                                          "why": {"no GPU kernel": None}}
    assert report["flagged"] == ["StringToHashBucketFast"]
    assert "StringToHashBucketFast (2 nodes)" in format_gpu_report(report)
    with pytest.raises(ValueError, match="StringToHashBucketFast"):
        assert_gpu_kernels(report)
    # An explicit allow-list replaces the defaults: nothing is explained by accident.
    assert gpu_kernel_report(nodes, by_design={}, host_dtypes={})["flagged"] == [
        "Const", "LookupTableFindV2", "StringToHashBucketFast"]


# ----------------------------------------------------------------------------- the models
@pytest.mark.parametrize("family", FAMILIES)
def test_every_op_of_the_training_step_has_a_gpu_kernel(family, tmp_path):
    report = _step_report(_config(tmp_path, family), family)
    assert report["op_types"] >= 30  # the forward pass, gradients and the optimizer's update
    on_cpu = {op: list(entry["why"]) for op, entry in report["on_cpu"].items()}
    assert on_cpu == EXPECTED_TRAIN_STEP[family], format_gpu_report(report)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("family", ["bpr_mf", "vbpr"])
def test_a_mixed_precision_step_keeps_its_gpu_kernels(family, precision, tmp_path):
    """Half-precision dtypes are where a GPU kernel can be missing for one dtype only."""
    report = _step_report(_config(tmp_path, family, precision=precision), family)
    on_cpu = {op: list(entry["why"]) for op, entry in report["on_cpu"].items()}
    assert on_cpu == STRING_CONST, format_gpu_report(report)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A retrieval export (DVBPR: recommend, embed_item, ...), an outfit export (PAN) and a
    pair export (the compatibility head: complete_pair, score_pairs)."""
    root = tmp_path_factory.mktemp("gpu_kernels")
    paths = {}
    for family, train_section in (("dvbpr", {}), ("pan", {"steps_per_epoch": None}),
                                  ("pair_compatibility", {"steps_per_epoch": None})):
        result = train(_config(root / family, family, **train_section))
        paths[family] = export_run(result.run_dir, root / "exports", family)
    return paths


EXPECTED_EXPORT = {
    "dvbpr": {"Const", "Equal", "HashTableV2", "LookupTableFindV2", "LookupTableImportV2",
              "RaggedGather", "RaggedTensorToTensor", "ResourceGather", "SelectV2", "Tile",
              "VarHandleOp"},
    "pan": {"Const", "HashTableV2", "LookupTableFindV2", "LookupTableImportV2",
            "ResourceGather", "SelectV2", "Tile", "VarHandleOp"},
    "pair_compatibility": {"Const", "Equal", "HashTableV2", "LookupTableFindV2",
                           "LookupTableImportV2", "NotEqual", "ResourceGather",
                           "ResourceGatherNd", "SelectV2", "Tile", "VarHandleOp"},
}


@pytest.mark.parametrize("family", EXPECTED_EXPORT)
def test_every_op_of_the_exported_signatures_has_a_gpu_kernel(exports, family):
    report = assert_gpu_kernels(saved_model_gpu_report(exports[family]), f"{family}'s export")
    assert set(report["on_cpu"]) == EXPECTED_EXPORT[family], format_gpu_report(report)
    # Only the id lookups, the seen-items lists and host dtypes: the math is on the GPU.
    host = set(HOST_DTYPES.values())
    for op, entry in report["on_cpu"].items():
        for why, reason in entry["why"].items():
            assert reason == CPU_BY_DESIGN.get(op) if why == "no GPU kernel" else reason in host
    # The checkpoint save / restore functions are in the SavedModel but in no signature.
    assert "SaveV2" not in report["on_cpu"] and "RestoreV2" not in report["on_cpu"]
    assert all(entry["signatures"] for entry in report["on_cpu"].values())


def test_check_ops_gpu_prints_the_table_and_fails_on_a_flagged_op(exports, tmp_path, capsys):
    assert cli_main(["check-ops", str(exports["pan"]), "--gpu"]) == 0
    out = capsys.readouterr().out
    assert "GPU kernels of the signatures:" in out and "0 flagged" in out
    assert "LookupTableFindV2" in out and "by design: the serving head's string id" in out
    # A host-only op no reason covers, put in every function (so in a signature's): exit 1.
    copy = tmp_path / "1"
    shutil.copytree(exports["pan"], copy)
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((copy / "saved_model.pb").read_bytes())
    for function in saved_model.meta_graphs[0].graph_def.library.function:
        function.node_def.add(name="new_host_op", op="StringToHashBucketFast")
    (copy / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    assert cli_main(["check-ops", str(copy), "--gpu"]) == 1
    assert "StringToHashBucketFast" in capsys.readouterr().out
