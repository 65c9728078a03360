"""Fault and fuzz tests (issue 15): generated malformed and extreme requests against a live
server subprocess, each with the status its generator implies.

A seeded generator writes 1,200 gRPC Predict requests (:data:`GRPC_GENERATORS`: wrong dtypes,
shapes and ranks, TensorProtos declaring far more elements than they hold, sizes over each
limit, empty batches, empty / non-UTF-8 / very long strings, NaN and inf where an integer
belongs, k negative / zero / huge, unknown aliases, signatures, models, versions, labels,
output_filter junk, bytes that are no PredictRequest) and 300 REST bodies (malformed JSON,
wrong types, deep nesting, huge numbers). Each case carries its oracle: the status codes the
server must answer and a phrase its message must hold (over a limit: INVALID_ARGUMENT naming the
flag), and for a valid request the answer itself, compared with the same SavedModel called
in-process over the same chunks of rows. The server runs small limits
(:data:`FUZZ_FLAGS`) so the extreme cases are cheap; afterwards it must be alive, healthy, answer
a normal request correctly, and its peak memory (VmHWM) must stay within
:data:`MEMORY_BOUND` of its resident memory before the fuzzing (without the limits, one of these
requests asks for 10^9 strings).
"""

from __future__ import annotations

import dataclasses
import http.client
import importlib.util
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc
from tfrec_fashion_serving import contract, testing

Code = grpc.StatusCode
SEED = 15
GRPC_CASES = 1200
REST_CASES = 300
MiB = 1024 * 1024
# Small limits: every "over the limit" case is a few KB, so 1,500 of them take seconds.
MAX_REQUEST_BYTES, MAX_BATCH_SIZE, MAX_INPUT_ELEMENTS, MAX_BATCH_K, CHUNK_ROWS = (
    65536, 64, 512, 256, 16)
FUZZ_FLAGS = [f"--max_request_bytes={MAX_REQUEST_BYTES}", f"--max_batch_size={MAX_BATCH_SIZE}",
              f"--max_input_elements={MAX_INPUT_ELEMENTS}", f"--max_batch_k={MAX_BATCH_K}",
              f"--batch_chunk_rows={CHUNK_ROWS}", "--file_system_poll_wait_seconds=1"]
# Peak growth allowed over the resident memory after warm-up: TF's and gRPC's allocator arenas
# for 4 concurrent requests. One request expanded without the limits would need gigabytes.
MEMORY_BOUND = 200 * MiB
N_USERS, N_ITEMS, N_CATEGORIES = 20, 40, 3  # ToyCatalogue.random's defaults (conftest)
MODEL_CONFIG = ('model_version_policy { all {} } version_labels { key: "stable" value: 1 } '
                'version_labels { key: "canary" value: 2 }')
RECOMMEND_OUTPUTS = ["cold_start", "item_ids", "scores"]


def load_soak_benchmark():
    """``benchmarks/serving_soak.py`` as a module (its :class:`ServerProcess`)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_soak.py"
    if "serving_soak" not in sys.modules:
        spec = importlib.util.spec_from_file_location("serving_soak", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["serving_soak"] = module
        spec.loader.exec_module(module)
    return sys.modules["serving_soak"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, saved_versions):
    """A server subprocess with small limits and REST: "toy" versions 1 (seed 0) and 2 (seed
    1), labels stable -> 1, canary -> 2."""
    base = tmp_path_factory.mktemp("fuzz") / "exports"
    for seed in (0, 1):
        testing.write_version(saved_versions[seed][1], str(base / "toy"), seed + 1)
    config = testing.write_models_config(str(base), {"toy": MODEL_CONFIG})
    rest_port = free_port()
    server = load_soak_benchmark().ServerProcess(config, [*FUZZ_FLAGS,
                                                          f"--rest_api_port={rest_port}"])
    server.rest_port = rest_port
    try:
        server.wait_serving("toy")
        _wait_version(server, 1)
        _wait_version(server, 2)
        yield server
    finally:
        server.stop()


def _wait_version(server, version: int, timeout: float = 60) -> None:
    """Waits until ``version`` answers (health says SERVING once any version does)."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="toy"))
    request.model_spec.version.value = version
    request.inputs["user_id"].CopyFrom(strings([b"u1"]))
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while True:
            try:
                stub.Predict(request, timeout=10)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


# === TensorProtos, written field by field (so a declared shape can lie) ===

def strings(values: list[bytes], shape: list[int] | None = None) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=values)
    for size in ([len(values)] if shape is None else shape):
        proto.tensor_shape.dim.add(size=size)
    return proto


def ints(values, shape: list[int] | None = None, dtype=types_pb2.DT_INT32
         ) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype)
    field = {types_pb2.DT_INT64: proto.int64_val, types_pb2.DT_FLOAT: proto.float_val,
             types_pb2.DT_DOUBLE: proto.double_val, types_pb2.DT_BOOL: proto.bool_val
             }.get(dtype, proto.int_val)
    field.extend(values)
    for size in ([len(values)] if shape is None else shape):
        proto.tensor_shape.dim.add(size=size)
    return proto


def strings_2d(rows: list[list[bytes]]) -> tensor_pb2.TensorProto:
    width = len(rows[0]) if rows else 0
    return strings([value for row in rows for value in row], [len(rows), width])


def request(signature: str = "recommend", name: str = "toy", version: int | None = None,
            label: str | None = None, output_filter=(), **inputs) -> predict_pb2.PredictRequest:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    message = predict_pb2.PredictRequest(model_spec=spec, output_filter=list(output_filter))
    for alias, proto in inputs.items():
        message.inputs[alias].CopyFrom(proto)
    return message


# === The oracle ===

@dataclasses.dataclass
class Case:
    """A generated request and what the server must answer.

    Attributes:
        kind: the generator that wrote it.
        request: a PredictRequest, or raw bytes sent as one.
        codes: the acceptable status codes.
        message: a phrase the error message must contain (None: any).
        expected: for an OK answer, ``(seed of the version, signature, complete numpy inputs,
            outputs asked for)``: the in-process reference the answer must equal.
    """

    kind: str
    request: predict_pb2.PredictRequest | bytes
    codes: frozenset
    message: str | None = None
    expected: tuple | None = None


def refused(kind, message_request, code=Code.INVALID_ARGUMENT, message=None) -> Case:
    return Case(kind, message_request, frozenset([code]), message)


DEFAULTS = {tensor.name: tensor.default_tensor().numpy() for tensor in contract.RECOMMEND.inputs
            if tensor.default is not None}
DTYPES = {tensor.name: tensor.dtype for tensor in contract.RECOMMEND.inputs}


def answered(kind, message_request, seed: int, signature: str, inputs: dict,
             outputs=()) -> Case:
    complete = {**(DEFAULTS if signature == "recommend" else {}), **inputs}
    return Case(kind, message_request, frozenset([Code.OK]),
                expected=(seed, signature, complete, list(outputs)))


def in_chunks(function, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """``function`` over chunks of ``rows`` rows (as the server runs it), joined with the
    contract's padding: the same ops on the same shapes as the server, so equal to the ulp."""
    total = max(value.shape[0] for value in inputs.values())
    parts = []
    for start in range(0, max(total, 1), rows):
        chunk = {alias: tf.constant(value[start:start + rows] if value.shape[0] == total > 1
                                    else value, dtype=DTYPES.get(alias, tf.string))
                 for alias, value in inputs.items()}
        parts.append({alias: tensor.numpy() for alias, tensor in function(**chunk).items()})
    joined = {}
    for alias in parts[0]:
        arrays = [part[alias] for part in parts]
        if arrays[0].ndim == 2:
            width = max(array.shape[1] for array in arrays)
            pad = b"" if arrays[0].dtype == object else -np.inf
            arrays = [np.pad(array, [(0, 0), (0, width - array.shape[1])],
                             constant_values=pad) for array in arrays]
        joined[alias] = np.concatenate(arrays)
    return joined


def check_answer(case: Case, response: predict_pb2.PredictResponse, reference,
                 assert_close) -> None:
    seed, signature, inputs, outputs = case.expected
    expected = in_chunks(reference(seed).signatures[signature], inputs, CHUNK_ROWS)
    served = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
    assert sorted(served) == sorted(outputs or expected), case.kind
    assert response.model_spec.version.value == seed + 1
    for alias, value in served.items():
        finite = expected[alias][np.isfinite(expected[alias])] if value.dtype.kind == "f" else []
        if np.any(finite):  # same ops on the same shapes: a few ulps at most
            assert_close(value, expected[alias], ulps=4, err_msg=case.kind)
        else:
            np.testing.assert_array_equal(value, expected[alias], err_msg=case.kind)


# === Generators: rng -> Case ===

def user_ids(rng, count: int) -> list[bytes]:
    """Known and unknown users, empty, non-UTF-8 and long ids."""
    def one():
        draw = rng.random()
        if draw < 0.6:
            return f"u{rng.integers(N_USERS)}".encode()
        if draw < 0.7:
            return b""
        if draw < 0.8:
            return bytes(rng.integers(128, 256, size=rng.integers(1, 8)).tolist())  # not UTF-8
        if draw < 0.85:
            return b"x" * int(rng.integers(1000, 4000))
        return f"stranger{rng.integers(10**9)}".encode()
    return [one() for _ in range(count)]


def item_ids(rng, count: int, known_only: bool = False) -> list[bytes]:
    return [f"i{rng.integers(N_ITEMS)}".encode() if known_only or rng.random() < 0.7 else
            rng.choice([b"", b"nope", b"\xff"]) for _ in range(count)]


def version_choice(rng) -> tuple[dict, int]:
    """``(request keywords, seed of the version that answers)``: latest, a version, a label."""
    return [({}, 1), ({"version": 1}, 0), ({"version": 2}, 1), ({"label": "stable"}, 0),
            ({"label": "canary"}, 1)][rng.integers(5)]


def valid_recommend(rng) -> Case:
    rows = int(rng.integers(1, MAX_BATCH_SIZE + 1))
    top = int(rng.integers(1, min(N_ITEMS, MAX_BATCH_K // rows) + 1))
    inputs = {"user_id": np.array(user_ids(rng, rows), object)}
    if rng.random() < 0.8 or rows * DEFAULTS["k"][0] > MAX_BATCH_K:
        inputs["k"] = (np.array([top], np.int32) if rng.random() < 0.5 else
                       rng.integers(1, top + 1, size=rows).astype(np.int32))
    if rng.random() < 0.5:
        categories = [b""] + [f"c{c}".encode() for c in range(N_CATEGORIES)]
        inputs["category"] = np.array([categories[i] for i in rng.integers(
            len(categories), size=1 if rng.random() < 0.5 else rows)], object)
    if rng.random() < 0.5:
        exclusion_rows = 1 if rng.random() < 0.5 else rows
        width = int(rng.integers(0, min(10, MAX_INPUT_ELEMENTS // exclusion_rows) + 1))
        inputs["exclude_item_ids"] = np.array(item_ids(rng, exclusion_rows * width),
                                              object).reshape(exclusion_rows, width)
    outputs = list(rng.choice(RECOMMEND_OUTPUTS, size=rng.integers(1, 3), replace=False)) \
        if rng.random() < 0.2 else []
    where, seed = version_choice(rng)
    signature = "recommend" if rng.random() < 0.8 else ""  # "": serving_default = recommend
    protos = {alias: (ints(value.tolist()) if alias == "k" else
                      strings_2d(value.tolist()) if value.ndim == 2 else strings(value.tolist()))
              for alias, value in inputs.items()}
    return answered("valid recommend", request(signature, output_filter=outputs, **where,
                                               **protos), seed, "recommend", inputs, outputs)


def valid_score(rng) -> Case:
    rows = int(rng.integers(1, 17))
    width = int(rng.integers(0, MAX_INPUT_ELEMENTS // rows + 1) if rng.random() < 0.2 else
                rng.integers(1, 21))
    users = np.array(user_ids(rng, rows), object)
    items = np.array(item_ids(rng, rows * width, known_only=True), object).reshape(rows, width)
    where, seed = version_choice(rng)
    return answered("valid score", request("score", user_id=strings(users.tolist()),
                                           item_ids=strings_2d(items.tolist()), **where),
                    seed, "score", {"user_id": users, "item_ids": items})


def valid_user_query(rng) -> Case:
    users = np.array(user_ids(rng, int(rng.integers(1, MAX_BATCH_SIZE + 1))), object)
    where, seed = version_choice(rng)
    return answered("valid user_query", request("user_query", user_id=strings(users.tolist()),
                                                **where), seed, "user_query", {"user_id": users})


def declared_larger_within_limits(rng) -> Case:
    """A TensorProto with fewer values than its shape declares is filled with its last value
    ("" when it has none), as TF does; within the limits it is a valid request."""
    rows = int(rng.integers(1, 17))
    given = user_ids(rng, int(rng.integers(0, 2)))
    users = np.array((given * rows)[:rows] if given else [b""] * rows, object)
    return answered("declared shape filled", request(
        "user_query", user_id=strings(given, [rows])), 1, "user_query", {"user_id": users})


def over_max_batch_size(rng) -> Case:
    rows = int(rng.integers(MAX_BATCH_SIZE + 1, MAX_INPUT_ELEMENTS + 1))
    alias, proto = [("user_id", strings([b"u1"] * rows)),
                    ("user_id", strings([b"u1"], [rows])),
                    ("k", ints([1], [rows])),
                    ("category", strings([], [rows]))][rng.integers(4)]
    inputs = {"user_id": strings([b"u1"]), alias: proto}
    return refused("over --max_batch_size", request(**inputs),
                   message=f"batch size {rows}; the limit is {MAX_BATCH_SIZE} (--max_batch_size)")


def over_max_input_elements(rng) -> Case:
    """Declared shapes up to 2^62 x 2^62 holding one value or none, and real wide inputs."""
    huge = int(10 ** rng.uniform(3, 18))
    choice = rng.integers(5)
    if choice == 0:
        inputs = {"user_id": strings([b"u1"], [max(huge, MAX_INPUT_ELEMENTS + 1)])}
    elif choice == 1:
        inputs = {"user_id": strings([b"u1"]), "exclude_item_ids": strings([b"i1"], [1, huge])}
    elif choice == 2:
        inputs = {"user_id": strings([b"u1"]),
                  "exclude_item_ids": strings([], [2 ** 62, 2 ** 62])}
    elif choice == 3:
        rows = int(rng.integers(1, MAX_BATCH_SIZE + 1))
        width = MAX_INPUT_ELEMENTS // rows + 1
        inputs = {"user_id": strings([b"u1"] * rows),
                  "exclude_item_ids": strings([b""] * (rows * width), [rows, width])}
    else:
        rows = int(rng.integers(1, 9))
        width = MAX_INPUT_ELEMENTS // rows + 1
        return refused("over --max_input_elements", request(
            "score", user_id=strings([b"u1"] * rows),
            item_ids=strings([b"i1"] * (rows * width), [rows, width])),
            message="(--max_input_elements)")
    return refused("over --max_input_elements", request(**inputs),
                   message="(--max_input_elements)")


def over_max_batch_k(rng) -> Case:
    rows = int(rng.integers(1, MAX_BATCH_SIZE + 1))
    top = int(rng.integers(MAX_BATCH_K // rows + 1, 2 ** 31))
    k = [top] if rng.random() < 0.5 else [1] * (rows - 1) + [top]
    return refused("over --max_batch_k", request(user_id=strings(user_ids(rng, rows)),
                                                 k=ints(k)),
                   message=f"{rows} rows x k={top} = {rows * top} results; the limit is "
                           f"{MAX_BATCH_K} (--max_batch_k)")


def over_max_request_bytes(rng) -> Case:
    """gRPC refuses a message over ``--max_request_bytes`` (its receive limit) before it is
    parsed: RESOURCE_EXHAUSTED, as TF Serving."""
    size = int(rng.integers(MAX_REQUEST_BYTES + 64, 4 * MAX_REQUEST_BYTES))
    return refused("over --max_request_bytes", request(user_id=strings([b"u" * size])),
                   Code.RESOURCE_EXHAUSTED, "larger than max")


def just_under_max_request_bytes(rng) -> Case:
    user = b"v" * int(rng.integers(MAX_REQUEST_BYTES - 4096, MAX_REQUEST_BYTES - 512))
    return answered("long id under --max_request_bytes", request(
        "user_query", user_id=strings([user])), 1, "user_query",
        {"user_id": np.array([user], object)})


WRONG_DTYPES = {
    "user_id": [types_pb2.DT_INT32, types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_BOOL],
    "k": [types_pb2.DT_INT64, types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_STRING,
          types_pb2.DT_BOOL, types_pb2.DT_HALF, types_pb2.DT_INVALID],
    "category": [types_pb2.DT_INT32, types_pb2.DT_DOUBLE],
    "exclude_item_ids": [types_pb2.DT_FLOAT, types_pb2.DT_INT32],
}
EXPECTED_DTYPES = {"user_id": "DT_STRING", "k": "DT_INT32", "category": "DT_STRING",
                   "exclude_item_ids": "DT_STRING"}


def wrong_dtype(rng) -> Case:
    """Wrong dtypes, and NaN and inf where an int32 belongs (dtype numbers no DataType has:
    test_a_dtype_number_no_datatype_has_is_invalid_argument)."""
    alias = list(WRONG_DTYPES)[rng.integers(len(WRONG_DTYPES))]
    dtype = WRONG_DTYPES[alias][rng.integers(len(WRONG_DTYPES[alias]))]
    value = float(rng.choice([np.nan, np.inf, -np.inf, 3.0, 1e30]))
    if dtype == types_pb2.DT_STRING:
        proto = strings([b"3"])
    elif dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        proto = ints([value], dtype=dtype)
    else:  # integers, bools, halves, DT_INVALID and unknown numbers: a value in int_val
        proto = ints([3])
        proto.dtype = dtype
    if alias == "exclude_item_ids":
        proto.tensor_shape.dim.add(size=1)
    return refused("wrong dtype", request(**{"user_id": strings([b"u1"]), alias: proto}),
                   message=f"Input {alias!r} of signature 'recommend' expects "
                           f"{EXPECTED_DTYPES[alias]}, received {types_pb2.DataType.Name(dtype)}")


def wrong_rank(rng) -> Case:
    alias, proto, expected = [
        ("user_id", strings([b"u1"], []), "[-1]"),
        ("user_id", strings([b"u1", b"u2"], [2, 1]), "[-1]"),
        ("user_id", strings([b"u1"] * 8, [2, 2, 2]), "[-1]"),
        ("k", ints([3], []), "[-1]"),
        ("k", ints([3, 3], [1, 2]), "[-1]"),
        ("category", strings([b""], [1, 1]), "[-1]"),
        ("exclude_item_ids", strings([b"i1"]), "[-1, -1]"),
        ("exclude_item_ids", strings([b"i1"], []), "[-1, -1]"),
        ("exclude_item_ids", strings([b"i1"], [1, 1, 1]), "[-1, -1]"),
    ][rng.integers(9)]
    inputs = {"user_id": strings([b"u1"]), alias: proto}
    return refused("wrong rank", request(**inputs),
                   message=f"Input {alias!r} of signature 'recommend' expects shape {expected}")


def malformed_tensor(rng) -> Case:
    """More values than the shape declares, or tensor_content not a whole number of int32s."""
    choice = rng.integers(3)
    if choice == 0:
        count = int(rng.integers(2, 10))
        inputs = {"user_id": strings([b"u1"] * count, [int(rng.integers(1, count))])}
    elif choice == 1:
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32,
                                       tensor_content=b"\x01" * int(rng.choice([1, 2, 3, 5])))
        proto.tensor_shape.dim.add(size=1)
        inputs = {"user_id": strings([b"u1"]), "k": proto}
    else:
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32,
                                       tensor_content=np.array([3, 3, 3], np.int32).tobytes())
        proto.tensor_shape.dim.add(size=2)
        inputs = {"user_id": strings([b"u1"]), "k": proto}
    return refused("malformed TensorProto", request(**inputs), message="tensor parsing error")


def k_out_of_range(rng) -> Case:
    """k within --max_batch_k but outside [1, 40]: the model's own in-graph check."""
    rows = int(rng.integers(1, 5))
    top = int(rng.choice([0, -1, -(2 ** 31), int(rng.integers(N_ITEMS + 1, MAX_BATCH_K // rows
                                                              + 1))]))
    # A negative k fails tf.range(max(k)) before the model's own assertion can say why.
    return refused("k out of range", request(user_id=strings([b"u1"] * rows), k=ints([top])),
                   message=f"k must be in [1, {N_ITEMS}]" if top >= 0 else None)


def unknown_category_or_item(rng) -> Case:
    bad = [b"hats", b"\xff\xfe", b"c" * 3000, b"C0"][rng.integers(4)]
    if rng.random() < 0.5:
        return refused("unknown category", request(user_id=strings([b"u1"]),
                                                   category=strings([bad])),
                       message="unknown category")
    return refused("unknown item", request("score", user_id=strings([b"u1"]),
                                           item_ids=strings([b"i1", bad], [1, 2])),
                   message="unknown item id")


def mismatched_rows(rng) -> Case:
    """Two inputs with different batch sizes, neither 1, within one chunk: the model refuses
    the broadcast. (Across chunks see test_rows_matching_no_other_input_are_refused.)"""
    rows = int(rng.integers(2, CHUNK_ROWS + 1))
    other = int(rng.choice([r for r in range(2, CHUNK_ROWS + 1) if r != rows]))
    return refused("mismatched rows", request(user_id=strings([b"u1"] * rows),
                                              k=ints([1] * other)))


def unknown_alias(rng) -> Case:
    alias = ["usr", "User_id", "", "k ", "item_ids", "\u00e9", "x" * 200][rng.integers(7)]
    return refused("unknown input", request(user_id=strings([b"u1"]), **{alias: ints([1])}),
                   message="are not inputs of signature 'recommend'")


def missing_input(rng) -> Case:
    if rng.random() < 0.5:
        return refused("missing input", request("score", user_id=strings([b"u1"])),
                       message="Missing but required: ['item_ids']")
    return refused("missing input", request(k=ints([3])),
                   message="Missing but required: ['user_id']")


def unknown_signature(rng) -> Case:
    name = ["nope", "__saved_model_init_op", "Recommend", "recommend ", "\u2603",
            "s" * 500][rng.integers(6)]
    return refused("unknown signature", request(name, user_id=strings([b"u1"])),
                   Code.FAILED_PRECONDITION, f'Serving signature key "{name}" not found')


def unknown_model_version_or_label(rng) -> Case:
    choice = rng.integers(4)
    if choice == 0:
        name = ["nope", "TOY", "toy ", "\u00fcber", "m" * 300][rng.integers(5)]
        return refused("unknown model", request(name=name, user_id=strings([b"u1"])),
                       Code.NOT_FOUND, f"Latest({name})")
    if choice == 1:
        return refused("no model name", request(name="", user_id=strings([b"u1"])),
                       message="model_spec.name is empty")
    if choice == 2:
        version = int(rng.choice([0, 3, -1, 2 ** 62, -(2 ** 63)]))
        return refused("unknown version", request(version=version, user_id=strings([b"u1"])),
                       Code.NOT_FOUND, f"Specific(toy, {version})")
    label = ["beta", "STABLE", " ", "l" * 100][rng.integers(4)]
    return refused("unknown label", request(label=label, user_id=strings([b"u1"])),
                   message=f"Unrecognized servable version label: {label}")


def output_filter_junk(rng) -> Case:
    if rng.random() < 0.5:
        junk = ["nope", "", "Scores", "query", "\u00e9"][rng.integers(5)]
        return refused("output_filter junk", request(user_id=strings([b"u1"]),
                                                     output_filter=["scores", junk]),
                       message=f"output tensor alias not found in signature 'recommend': {junk}")
    return refused("output_filter repeated", request(user_id=strings([b"u1"]),
                                                     output_filter=["scores", "scores"]),
                   message="duplicate output tensor alias")


def empty_batch(rng) -> Case:
    """Zero users (with recommend's defaults of batch size 1) is an empty answer; with k empty
    too, k has no maximum. (Every input empty: test_an_empty_batch_is_an_empty_answer.)"""
    if rng.random() < 0.5:
        return answered("empty batch", request(user_id=strings([])), 1, "recommend",
                        {"user_id": np.zeros(0, object)})
    return refused("empty batch, empty k", request(user_id=strings([]), k=ints([])))


def not_a_predict_request(rng) -> Case:
    """Bytes that are no PredictRequest: gRPC's own INTERNAL when they do not parse; when they
    happen to parse, the request they parse as."""
    valid = request(user_id=strings([b"u1"]), k=ints([3])).SerializeToString()
    choice = rng.integers(3)
    if choice == 0:
        raw = rng.bytes(int(rng.integers(1, 200)))
    elif choice == 1:
        raw = valid[:int(rng.integers(1, len(valid)))]
    else:
        flipped = bytearray(valid)
        for position in rng.integers(len(valid), size=3):
            flipped[position] = int(rng.integers(256))
        raw = bytes(flipped)
    try:
        parsed = predict_pb2.PredictRequest.FromString(raw)
    except (DecodeError, RuntimeError, ValueError):
        return refused("not a PredictRequest", raw, Code.INTERNAL)
    if not parsed.model_spec.name:
        return refused("garbage parsed", raw, message="model_spec.name is empty")
    if parsed.model_spec.name != "toy":
        return refused("garbage parsed", raw, Code.NOT_FOUND)
    # A flip that kept the model name: any refusal the parsed request earns, or its answer.
    return Case("garbage parsed as toy", raw, frozenset(
        [Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.FAILED_PRECONDITION]))


GRPC_GENERATORS: list[tuple[float, Callable]] = [
    (14, valid_recommend), (5, valid_score), (5, valid_user_query),
    (3, declared_larger_within_limits), (1, just_under_max_request_bytes), (2, empty_batch),
    (5, over_max_batch_size), (6, over_max_input_elements), (5, over_max_batch_k),
    (2, over_max_request_bytes), (6, wrong_dtype), (4, wrong_rank), (3, malformed_tensor),
    (4, k_out_of_range), (3, unknown_category_or_item), (2, mismatched_rows),
    (3, unknown_alias), (2, missing_input), (3, unknown_signature),
    (5, unknown_model_version_or_label), (3, output_filter_junk), (4, not_a_predict_request),
]


def generate(count: int, seed: int = SEED) -> list[Case]:
    rng = np.random.default_rng(seed)
    weights = np.array([weight for weight, _ in GRPC_GENERATORS], float)
    picks = rng.choice(len(GRPC_GENERATORS), size=count, p=weights / weights.sum())
    return [GRPC_GENERATORS[pick][1](rng) for pick in picks]


# === Sending ===

def send(channel: grpc.Channel, case: Case):
    """``(code, details, response)`` of one case."""
    if isinstance(case.request, bytes):
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                   request_serializer=None,
                                   response_deserializer=predict_pb2.PredictResponse.FromString)
    else:
        call = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
    try:
        return Code.OK, "", call(case.request, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details() or "", None


def normal_request_answers_correctly(server, reference, assert_close) -> None:
    with grpc.insecure_channel(server.target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request(user_id=strings([b"u1", b"nobody"]), k=ints([5])), timeout=30)
    expected = testing.recommend_in_process(reference(1), ["u1", "nobody"], k=5)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["item_ids"]),
                                  expected["item_ids"])
    assert_close(tf.make_ndarray(response.outputs["scores"]), expected["scores"], ulps=4)


def assert_healthy(server, reference, assert_close) -> None:
    assert server.alive(), "".join(server.output[-40:])
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    assert server.health("toy") == health_pb2.HealthCheckResponse.SERVING
    normal_request_answers_correctly(server, reference, assert_close)


# === Tests ===

def test_the_generator_covers_every_kind_and_is_seeded():
    first, again = generate(GRPC_CASES), generate(GRPC_CASES)
    assert [case.kind for case in first] == [case.kind for case in again]
    kinds = {case.kind for case in first}
    assert len(first) >= 1000 and len(kinds) >= 25, sorted(kinds)
    assert sum(case.codes == {Code.OK} for case in first) > 250


def test_generated_grpc_requests_get_their_oracles_status(fuzz_server, reference,
                                                         assert_close):
    cases = generate(GRPC_CASES)
    normal_request_answers_correctly(fuzz_server, reference, assert_close)  # warm
    before = fuzz_server.memory()
    began = time.monotonic()
    with grpc.insecure_channel(fuzz_server.target) as channel, \
            futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda case: send(channel, case), cases))
    elapsed = time.monotonic() - began
    after = fuzz_server.memory()

    wrong = []
    for case, (code, details, response) in zip(cases, results):
        if code not in case.codes or (case.message and case.message not in details):
            wrong.append(f"{case.kind}: expected {sorted(c.name for c in case.codes)} "
                         f"{case.message!r}, received {code.name} {details[:300]!r}")
        elif code == Code.OK and case.expected is not None:
            check_answer(case, response, reference, assert_close)
    assert not wrong, f"{len(wrong)} of {len(cases)} wrong:\n" + "\n".join(wrong[:30])
    print(f"{len(cases)} gRPC cases in {elapsed:.1f} s; server RSS {before['rss'] / MiB:.0f} "
          f"-> {after['rss'] / MiB:.0f} MB, peak {after['peak'] / MiB:.0f} MB")
    assert after["peak"] - before["rss"] < MEMORY_BOUND
    assert_healthy(fuzz_server, reference, assert_close)


# === REST ===

def rest_bodies(count: int, seed: int = SEED) -> list[tuple[str, str, bytes, set, str | None]]:
    """``(kind, path, body, HTTP statuses, phrase of the error)``."""
    rng = np.random.default_rng(seed)
    predict_path = "/v1/models/toy:predict"
    valid = json.dumps({"signature_name": "recommend",
                        "instances": [{"user_id": "u1", "k": 3}, {"user_id": "u2", "k": 3}]})
    cases = []
    makers = [
        lambda: ("truncated JSON", predict_path,
                 valid[:int(rng.integers(1, len(valid) - 1))].encode(), {400}, "JSON Parse"),
        lambda: ("bytes", predict_path, rng.bytes(int(rng.integers(1, 100))), {400}, None),
        lambda: ("not an object", predict_path,
                 [b"[]", b"3", b'"x"', b"null", b"", b"true"][rng.integers(6)], {400}, None),
        lambda: ("neither or both formats", predict_path,
                 [b"{}", b'{"instances": [], "inputs": {}}'][rng.integers(2)], {400},
                 "exactly one of"),
        lambda: ("signature_name not a string", predict_path,
                 b'{"signature_name": 5, "inputs": {"user_id": ["u1"]}}', {400}, None),
        lambda: ("k of the wrong type", predict_path, json.dumps({"inputs": {
            "user_id": ["u1"], "k": [["5", 1.5, "x", None, {"a": 1}][rng.integers(5)]]}}).encode(),
            {400}, None),
        lambda: ("user_id of the wrong type", predict_path, json.dumps({"inputs": {
            "user_id": [[3, None, 1.5, True][rng.integers(4)]]}}).encode(), {400}, None),
        lambda: ("huge number", predict_path, (
            '{"inputs": {"user_id": ["u1"], "k": [%s]}}' % ["1e400", "-1e400", "NaN",
                                                            "Infinity", str(10 ** 30),
                                                            str(2 ** 40), "1" * 400,
                                                            "-9" * 100][rng.integers(8)]
        ).encode(), {400}, None),
        lambda: ("deep nesting", predict_path, nested_body(int(10 ** rng.uniform(0.5, 4.5))),
                 {400}, None),
        lambda: ("ragged", predict_path,
                 b'{"inputs": {"user_id": ["u1"], "exclude_item_ids": [["i1"], []]}}', {400},
                 None),
        lambda: ("over --max_batch_size", predict_path, json.dumps({"instances": [
            {"user_id": "u1"}] * int(rng.integers(MAX_BATCH_SIZE + 1, 500))}).encode(), {400},
            "(--max_batch_size)"),
        lambda: ("over --max_batch_k", predict_path, json.dumps({"inputs": {
            "user_id": ["u1"], "k": [int(rng.integers(MAX_BATCH_K + 1, 2 ** 31))]}}).encode(),
            {400}, "(--max_batch_k)"),
        lambda: ("unknown model", "/v1/models/nope:predict", valid.encode(), {404}, None),
        lambda: ("unknown version", "/v1/models/toy/versions/7:predict", valid.encode(), {404},
                 None),
        lambda: ("unknown label", "/v1/models/toy/labels/beta:predict", valid.encode(), {400},
                 "Unrecognized servable version label"),
        lambda: ("unknown signature", predict_path,
                 b'{"signature_name": "nope", "instances": ["u1"]}', {400}, "not found"),
        lambda: ("bad path", ["/v1/models/toy:explode", "/v2/x", "/v1/models/toy/metadata",
                              "/v1/models/:predict"][rng.integers(4)], valid.encode(), {404},
                 None),
        lambda: ("classify", "/v1/models/toy:classify", valid.encode(), {501}, None),
        lambda: ("valid", predict_path, valid.encode(), {200}, None),
    ]
    for _ in range(count):
        cases.append(makers[rng.integers(len(makers))]())
    return cases


def nested_body(depth: int) -> bytes:
    """A columnar body whose user_id is "u1" inside ``depth`` lists."""
    return ('{"inputs": {"user_id": %s"u1"%s}}' % ("[" * depth, "]" * depth)).encode()


def post(port: int, path: str, body: bytes) -> tuple[int, dict]:
    http = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                  headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(http, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_generated_rest_bodies_get_their_oracles_status(fuzz_server, reference, assert_close):
    cases = rest_bodies(REST_CASES)
    with futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda case: post(fuzz_server.rest_port, case[1], case[2]),
                                cases))
    expected = testing.recommend_in_process(reference(1), ["u1", "u2"], k=3)
    wrong = []
    for (kind, path, body, statuses, phrase), (status, answer) in zip(cases, results):
        if status not in statuses or (phrase and phrase not in answer.get("error", "")):
            wrong.append(f"{kind} {path} {body[:80]!r}: expected {statuses} {phrase!r}, "
                         f"received {status} {str(answer)[:200]}")
        elif status == 200:
            ids = [[item.encode() for item in row["item_ids"]] for row in answer["predictions"]]
            np.testing.assert_array_equal(np.array(ids, object), expected["item_ids"])
    assert not wrong, f"{len(wrong)} of {len(cases)} wrong:\n" + "\n".join(wrong[:30])
    assert_healthy(fuzz_server, reference, assert_close)


# === Faults the generator found, each fixed at its cause ===

def _code(server, message_request):
    with grpc.insecure_channel(server.target) as channel:
        return send(channel, Case("", message_request, frozenset()))


def test_a_dtype_number_no_datatype_has_is_invalid_argument(fuzz_server):
    proto = ints([3])
    proto.dtype = 999
    code, details, _ = _code(fuzz_server, request(user_id=strings([b"u1"]), k=proto))
    assert code == Code.INVALID_ARGUMENT, details
    assert "Input 'k' of signature 'recommend' expects DT_INT32" in details


def test_an_empty_batch_is_an_empty_answer(fuzz_server):
    code, details, response = _code(fuzz_server, request("user_query", user_id=strings([])))
    assert code == Code.OK, details
    assert tf.make_ndarray(response.outputs["query"]).shape == (0, 8)
    assert tf.make_ndarray(response.outputs["cold_start"]).shape == (0,)


@pytest.mark.parametrize("users", [2 * CHUNK_ROWS, CHUNK_ROWS + 1])
def test_rows_matching_no_other_input_are_refused(fuzz_server, users):
    """user_id of ``users`` rows with k of CHUNK_ROWS rows: as unchunked (TF Serving), the
    batch sizes disagree, so INVALID_ARGUMENT, not rows of k applied to the wrong users."""
    code, details, response = _code(fuzz_server, request(
        user_id=strings([b"u1"] * users), k=ints([2] * CHUNK_ROWS)))
    assert code == Code.INVALID_ARGUMENT, (
        f"answered {tf.make_ndarray(response.outputs['item_ids']).shape[0]} rows for {users} "
        "users")


def test_rest_bodies_over_max_request_bytes_are_413_unread(fuzz_server, reference,
                                                           assert_close):
    """A Content-Length over --max_request_bytes is refused from the headers: a real body over
    the limit, and a header claiming 10^12 bytes over a tiny body (never waited for)."""
    body = json.dumps({"inputs": {"user_id": ["u" * (MAX_REQUEST_BYTES + 10)]}}).encode()
    for length, payload in [(len(body), body), (10 ** 12, b"{}")]:
        connection = http.client.HTTPConnection("127.0.0.1", fuzz_server.rest_port, timeout=10)
        began = time.monotonic()
        try:
            connection.putrequest("POST", "/v1/models/toy:predict")
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(length))
            connection.endheaders()
            try:
                connection.send(payload)
            except OSError:  # the server may close before the body is sent: still refused
                pass
            response = connection.getresponse()
            assert response.status == 413
            assert "(--max_request_bytes)" in json.loads(response.read())["error"]
        finally:
            connection.close()
        assert time.monotonic() - began < 5
    assert_healthy(fuzz_server, reference, assert_close)


@pytest.mark.parametrize("depth", [33, 64, 200, 999, 30000])
def test_json_nested_past_numpys_dimensions_or_the_parsers_depth_is_400(fuzz_server, depth):
    """Found by the generator: 33 to a few hundred levels once reached ndarray.flat, which
    numpy 2 supports up to 32 dimensions, and were answered 500."""
    status, answer = post(fuzz_server.rest_port, "/v1/models/toy:predict", nested_body(depth))
    assert status == 400, answer
