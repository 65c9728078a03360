"""The op check of a SavedModel: every op type is found (inside the function library too), stock
ops pass, custom-op namespaces and unregistered ops are named, and bad paths fail clearly."""

import json
import shutil

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfrec_fashion_export.graph_ops import (assert_stock_ops, check_stock_ops, format_report,
                                            non_stock_ops, read_saved_model, saved_model_ops,
                                            signature_nodes)


class _TinyRecommender(tf.Module):
    """Scores ids through a hash table and a matmul, returns the top 2: MatMul, TopKV2 and
    LookupTableFindV2 all live inside the signature's function, not in the top-level graph."""

    def __init__(self):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["a", "b", "c"], [0, 1, 2]), default_value=0)
        self.users = tf.Variable([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        self.items = tf.Variable([[1.0, 2.0], [3.0, 1.0], [0.5, 0.5]])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def recommend(self, user_id):
        query = tf.gather(self.users, self.table.lookup(user_id))
        scores, indices = tf.math.top_k(tf.matmul(query, self.items, transpose_b=True), k=2)
        return {"scores": scores, "indices": indices}


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("graph_ops") / "1"
    module = _TinyRecommender()
    tf.saved_model.save(module, str(directory), signatures={"recommend": module.recommend})
    return directory


def _read(directory):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((directory / "saved_model.pb").read_bytes())
    return saved_model


def test_ops_are_counted_inside_the_function_library(saved_model_dir):
    ops = saved_model_ops(saved_model_dir)
    for name in ("MatMul", "TopKV2", "LookupTableFindV2", "ResourceGather", "HashTableV2"):
        assert ops.get(name, 0) >= 1, name
    # MatMul and TopKV2 exist only in library functions: finding them proves those are walked.
    graph_def = _read(saved_model_dir).meta_graphs[0].graph_def
    top_level = {node.op for node in graph_def.node}
    assert "MatMul" not in top_level and "TopKV2" not in top_level
    in_library = [f.signature.name for f in graph_def.library.function
                  if any(node.op == "TopKV2" for node in f.node_def)]
    assert in_library
    assert list(ops) == sorted(ops)
    assert all(isinstance(count, int) and count >= 1 for count in ops.values())


def test_a_plain_tensorflow_model_uses_only_stock_ops(saved_model_dir):
    report = check_stock_ops(saved_model_dir)
    assert report["non_stock"] == []
    assert report["tensorflow"] == tf.__version__
    assert report["op_types"] == len(report["ops"]) >= 5
    assert report["nodes"] == sum(report["ops"].values())
    assert json.loads(json.dumps(report)) == report
    assert assert_stock_ops(saved_model_dir) == report
    summary = format_report(report)
    assert f"{report['op_types']} op types" in summary
    assert f"TensorFlow {tf.__version__}'s op registry" in summary
    assert "no custom-op namespaces" in summary


def test_non_stock_ops_names_namespaces_and_unregistered_ops():
    assert non_stock_ops({"MatMul": 2, "TopKV2": 1}) == []
    assert non_stock_ops(["TopKV2", "Scann>ScannSearchBatched", "NotARealOpXyz",
                          "Addons>ImageProjectiveTransformV2"]) == [
        "Addons>ImageProjectiveTransformV2", "NotARealOpXyz", "Scann>ScannSearchBatched"]
    # A registered name behind a namespace is still custom: ">" alone decides.
    assert non_stock_ops(["Custom>MatMul"]) == ["Custom>MatMul"]


def test_custom_and_unregistered_ops_in_a_function_are_reported(saved_model_dir, tmp_path):
    directory = tmp_path / "1"
    shutil.copytree(saved_model_dir, directory)
    saved_model = _read(directory)
    library = saved_model.meta_graphs[0].graph_def.library
    function = next(f for f in library.function if any(n.op == "TopKV2" for n in f.node_def))
    function.node_def.add(name="scann_search", op="Scann>ScannSearchBatched")
    function.node_def.add(name="not_real", op="NotARealOpXyz")
    # A node whose op names a library function is a call of it, not an unknown op.
    function.node_def.add(name="direct_call", op=library.function[0].signature.name)
    (directory / "saved_model.pb").write_bytes(saved_model.SerializeToString())

    assert non_stock_ops(saved_model_ops(directory)) == ["NotARealOpXyz",
                                                         "Scann>ScannSearchBatched"]
    report = check_stock_ops(directory)
    assert report["non_stock"] == ["NotARealOpXyz", "Scann>ScannSearchBatched"]
    assert report["ops"]["Scann>ScannSearchBatched"] == 1
    assert library.function[0].signature.name not in report["ops"]
    summary = format_report(report)
    assert "Scann>ScannSearchBatched (1 node, custom-op namespace 'Scann')" in summary
    assert "NotARealOpXyz (1 node)" in summary
    with pytest.raises(ValueError, match="Op type not registered") as error:
        assert_stock_ops(directory)
    assert "Scann>ScannSearchBatched" in str(error.value)
    assert "NotARealOpXyz" in str(error.value)


def test_missing_directory_or_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(FileNotFoundError, match="no_such_model.*saved_model.pb"):
        saved_model_ops(missing)
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        assert_stock_ops(missing)


def test_a_file_that_is_not_a_saved_model_is_a_clear_error(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match="saved_model.pb.*not a SavedModel"):
        saved_model_ops(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff not a proto")
    with pytest.raises(ValueError, match="not a SavedModel"):
        saved_model_ops(tmp_path)


def test_a_signature_reaches_its_functions_but_not_the_checkpoint_machinery(saved_model_dir):
    meta_graph = read_saved_model(saved_model_dir).meta_graphs[0]
    ops = {node.op for node in signature_nodes(meta_graph, "recommend")}
    # Its body, through the top-level call: the lookup, the gather, the matmul and the top k.
    assert {"LookupTableFindV2", "ResourceGather", "MatMul", "TopKV2", "Placeholder"} <= ops
    # The SavedModel's save / restore functions are in its library, reached from no signature.
    assert "SaveV2" in saved_model_ops(saved_model_dir)
    assert not ops & {"SaveV2", "RestoreV2", "MergeV2Checkpoints"}
    # The load-time initialiser fills the table.
    assert "LookupTableImportV2" in {node.op for node in signature_nodes(
        meta_graph, "__saved_model_init_op")}
