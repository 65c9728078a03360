"""The server's fast paths give what the generic ones give: a signature called with its flat
tensors answers as the keyword call, request protos convert as ``tf.make_ndarray`` and
response protos are ``tf.make_tensor_proto``'s message (``servable.py``, ``predict.py``)."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tfrec_fashion_serving import predict, servable, testing


@pytest.fixture(scope="module")
def toy(saved_versions):
    """The seed-0 toy version loaded as the server loads it."""
    _, path = saved_versions[0]
    return servable.Servable.load("toy", 1, path)


def keyword_call(loaded, name, inputs):
    """The public call: ``signature(**tensors)``, every input given, outputs as numpy."""
    function = loaded.signatures[name]
    _, specs = function.structured_input_signature
    tensors = {alias: tf.constant(value, specs[alias].dtype) for alias, value in inputs.items()}
    return {alias: tensor.numpy() for alias, tensor in function(**tensors).items()}


def assert_same_outputs(got, want):
    assert sorted(got) == sorted(want)
    for alias in want:
        assert got[alias].dtype == want[alias].dtype, alias
        assert got[alias].shape == want[alias].shape, alias
        if want[alias].dtype.kind == "f":
            np.testing.assert_allclose(got[alias], want[alias], rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(got[alias], want[alias])


def test_every_toy_signature_takes_the_flat_call(toy):
    for name, function in toy._functions.items():
        assert function.flat_order == sorted(toy.signature_defs[name].inputs), name


@pytest.mark.parametrize("request_index", range(len(testing.warmup_requests("toy"))))
def test_flat_call_answers_as_the_keyword_call(toy, request_index):
    """Each warm-up request (every signature; known and unknown users, exclusions), its
    missing inputs filled with the SignatureDef's defaults."""
    request = testing.warmup_requests("toy")[request_index]
    name, signature = predict.find_signature(toy, request.model_spec.signature_name)
    inputs = predict.prepare_inputs(name, signature, request.inputs, predict.array_from_proto,
                                    defaults=toy.default_inputs(name))
    assert_same_outputs(toy.run(name, inputs), keyword_call(toy.loaded, name, inputs))


def test_recommend_with_every_input_given_answers_as_the_keyword_call(toy, saved_versions):
    catalogue, _ = saved_versions[0]
    users = np.array([user.encode() for user in catalogue.user_ids[:3]] + [b"nobody"], object)
    inputs = {"user_id": users, "k": np.array([5, 1, 7, 3], np.int32),
              "category": np.array([b"", catalogue.categories[0].encode(), b"", b""], object),
              "exclude_item_ids": np.array([[catalogue.item_ids[0].encode()]] * 4, object),
              "exclude_seen": np.array([True, False, True, False])}
    inputs = {alias: value for alias, value in inputs.items()
              if alias in toy.signature_defs["recommend"].inputs}
    assert_same_outputs(toy.run("recommend", inputs), keyword_call(toy.loaded, "recommend", inputs))


def test_defaults_are_read_only_and_their_tensors_reused(toy):
    defaults = toy.default_inputs("recommend")
    assert defaults, "the toy recommend signature has defaults"
    for alias, array in defaults.items():
        assert not array.flags.writeable, alias
        expected = tf.make_ndarray(toy.signature_defs["recommend"].defaults[alias])
        np.testing.assert_array_equal(array, expected)
        assert toy._functions["recommend"]._tensor(alias, array) is \
            toy._functions["recommend"]._tensor(alias, array)
        copy = np.array(array)  # equal but not the default: converted, not reused
        assert toy._functions["recommend"]._tensor(alias, copy) is not \
            toy._functions["recommend"]._tensor(alias, array)


@pytest.mark.parametrize("change", ["shape", "dtype", "alias"])
def test_a_function_that_differs_from_its_signature_def_is_called_by_keyword(toy, change):
    function = toy.loaded.signatures["recommend"]
    signature = servable.SignatureDef()
    signature.CopyFrom(toy.signature_defs["recommend"])
    assert servable._flat_order(function, signature) == sorted(signature.inputs)
    if change == "shape":
        signature.inputs["k"].tensor_shape.dim[0].size = 3
    elif change == "dtype":
        signature.inputs["k"].dtype = types_pb2.DT_INT64
    else:
        signature.inputs["k_renamed"].CopyFrom(signature.inputs.pop("k"))
    assert servable._flat_order(function, signature) is None
    wrapped = servable._SignatureFunction(function, toy.signature_defs["recommend"])
    wrapped.flat_order = None  # the keyword path still answers
    inputs = {"user_id": np.array([b"u0"], object), "k": np.array([4], np.int32)}
    inputs = {**toy.default_inputs("recommend"), **inputs}
    got = {alias: tensor.numpy() for alias, tensor in wrapped(inputs).items()}
    assert_same_outputs(got, toy.run("recommend", inputs))


ARRAYS = {
    "float32": lambda rng, shape: rng.normal(size=shape).astype(np.float32),
    "float64": lambda rng, shape: rng.normal(size=shape),
    "int32": lambda rng, shape: rng.integers(-2**31, 2**31, size=shape, dtype=np.int32),
    "int64": lambda rng, shape: rng.integers(-2**62, 2**62, size=shape, dtype=np.int64),
    "bool": lambda rng, shape: rng.random(size=shape) < 0.5,
    "bytes": lambda rng, shape: np.array(
        [bytes(rng.integers(0, 256, size=rng.integers(0, 6)).astype(np.uint8))
         for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape),
    "str": lambda rng, shape: np.array([f"é{i}" for i in range(int(np.prod(shape)))],
                                       dtype=object).reshape(shape),
    "float16": lambda rng, shape: rng.normal(size=shape).astype(np.float16),
}
SHAPES = [(), (0,), (1,), (3,), (2, 3), (2, 0), (1, 1, 4)]


@pytest.mark.parametrize("kind", sorted(ARRAYS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_response_protos_are_make_tensor_protos(kind, shape):
    array = ARRAYS[kind](np.random.default_rng(len(shape) + len(kind)), shape)
    proto = tensor_pb2.TensorProto()
    predict.tensor_proto_into(proto, array)
    want = tf.make_tensor_proto(array)
    assert proto == want
    assert proto.SerializeToString(deterministic=True) == want.SerializeToString(
        deterministic=True)


def request_protos(kind, shape, rng):
    """The ways a client writes ``array``: make_tensor_proto, and the repeated field by hand."""
    array = ARRAYS[kind](rng, shape)
    yield array, tf.make_tensor_proto(array)
    made = tf.make_tensor_proto(array)
    if made.tensor_content:  # the same values in the dtype's repeated field
        field = {"float32": "float_val", "float64": "double_val", "int32": "int_val",
                 "int64": "int64_val"}[kind]
        by_hand = tensor_pb2.TensorProto(dtype=made.dtype, tensor_shape=made.tensor_shape)
        getattr(by_hand, field).extend(array.ravel().tolist())
        yield array, by_hand


@pytest.mark.parametrize("kind", ["float32", "float64", "int32", "int64", "bool", "bytes"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_request_protos_convert_as_make_ndarray(kind, shape):
    for array, proto in request_protos(kind, shape, np.random.default_rng(7)):
        info = type("Info", (), {"dtype": proto.dtype})()
        got = predict.array_from_proto("s", "x", info, proto)
        want = tf.make_ndarray(proto)
        assert got.dtype == want.dtype and got.shape == want.shape == array.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("proto", [
    tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a"],
                           tensor_shape={"dim": [{"size": 3}]}),  # padded with the last value
    tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[4],
                           tensor_shape={"dim": [{"size": 2}, {"size": 2}]}),
    tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[],
                           tensor_shape={"dim": [{"size": 2}]}),  # zeros
    tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[1, 2],
                           tensor_content=np.array([5, 6], np.int32).tobytes(),
                           tensor_shape={"dim": [{"size": 2}]}),  # tensor_content wins
    tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[7]),  # a scalar
    tensor_pb2.TensorProto(dtype=types_pb2.DT_BOOL, bool_val=[True],
                           tensor_shape={"dim": [{"size": 1}, {"size": 3}]}),
], ids=["string-padded", "int-padded", "float-empty", "content-and-field", "scalar",
        "bool-padded"])
def test_unusual_request_protos_convert_as_make_ndarray(proto):
    info = type("Info", (), {"dtype": proto.dtype})()
    got = predict.array_from_proto("s", "x", info, proto)
    want = tf.make_ndarray(proto)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
