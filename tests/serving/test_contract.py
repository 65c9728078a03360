"""The serving contract is written once (``contract.py``) and the test model is built from it: its
SignatureDefs are the contract's, aliases, dtypes, shapes and defaults (the export's are held
to it in ``tests/export/test_export.py``), and ``differences`` names any drift."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tfrec_fashion_serving import contract
from tfrec_fashion_serving.client import predict_request
from tfrec_fashion_serving.predict import predict
from tfrec_fashion_serving.servable import read_signature_defs


@pytest.fixture(scope="module")
def toy_signature_defs(saved_versions):
    return read_signature_defs(saved_versions[0][1])


def test_the_toy_model_follows_the_contract(toy_signature_defs):
    for signature in contract.RETRIEVAL.signatures:
        assert contract.differences(signature, toy_signature_defs[signature.name]) == []
    served_default = toy_signature_defs[contract.SERVING_DEFAULT]
    assert contract.differences(contract.RETRIEVAL[contract.RETRIEVAL.default],
                                served_default) == []


def test_differences_name_each_kind_of_drift(toy_signature_defs):
    drifted = meta_graph_pb2.SignatureDef()
    drifted.CopyFrom(toy_signature_defs["recommend"])
    drifted.inputs["k"].dtype = tf.int64.as_datatype_enum
    drifted.defaults["k"].CopyFrom(tf.make_tensor_proto(np.array([5], np.int32)))
    del drifted.defaults["exclude_seen"]
    found = contract.differences(contract.RECOMMEND, drifted)
    assert "recommend.k: int64 [None], contract int32 [None]" in found
    assert "recommend.k: default [5], contract [10]" in found
    assert any("defaults for" in entry and "exclude_seen" in entry for entry in found)
    del drifted.outputs["cold_start"]
    assert any(entry.startswith("recommend: outputs") for entry in
               contract.differences(contract.RECOMMEND, drifted))


def test_warmup_inputs_run_on_every_signature(shared_server):
    """The warm-up requests the export and the toy write answer on a contract model."""
    servable = shared_server.manager.servable("toy", version=1)
    for signature, inputs in contract.warmup_inputs(["u0", "u1"], ["i0", "i1", "i2"]).items():
        assert set(inputs) <= {tensor.name for tensor in contract.RETRIEVAL[signature].inputs}
        response = predict(servable, predict_request("toy", inputs, signature))
        assert set(response.outputs) == {tensor.name for tensor in
                                         contract.RETRIEVAL[signature].outputs}


def test_padding_values_follow_the_dtype():
    assert contract.padding_value(np.dtype(object)) == b""
    assert contract.padding_value(np.float32) == -np.inf
    assert contract.padding_value(np.int64) == -1
    assert contract.padding_value(np.bool_) is False
