"""Per-request limits and chunked running (``limits.py``, ``predict.py``): a request over a limit is
refused before any TensorFlow work with a message naming the flag; a large valid batch runs in
chunks that give the same answer as one call; an abandoned request stops within one chunk."""

import json
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc
from tfrec_fashion_serving import limits as limits_module
from tfrec_fashion_serving.errors import ServingError
from tfrec_fashion_serving.limits import Limits
from tfrec_fashion_serving.predict import Deadline, predict
from tfrec_fashion_serving.server import build_parser
from tfrec_fashion_serving.testing import recommend_in_process


def _request(signature="recommend", **inputs):
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="toy", signature_name=signature))
    for alias, value in inputs.items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        request.inputs[alias].CopyFrom(proto)
    return request


def _users(count, known=20):
    return np.array([f"u{index % known}".encode() for index in range(count)], dtype=object)


def _outputs(response):
    return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}


@pytest.fixture
def servable(shared_server, monkeypatch):
    """Version 1 of the shared toy model, its ``run`` calls counted."""
    servable = shared_server.manager.servable("toy", version=1)
    calls = []
    run = servable.run

    def counted(signature_name, inputs):
        calls.append(max(len(value) for value in inputs.values()))
        return run(signature_name, inputs)

    monkeypatch.setattr(servable, "run", counted)
    servable.calls = calls
    return servable


# === Refused before any TensorFlow work ===

def _refused(servable, request, limits):
    with pytest.raises(ServingError) as error:
        predict(servable, request, limits=limits)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert servable.calls == [], "a refused request must not reach TensorFlow"
    return error.value.message


def test_too_many_rows_name_max_batch_size(servable):
    message = _refused(servable, _request(user_id=_users(11)), Limits(max_batch_size=10))
    assert "batch size 11" in message and "--max_batch_size" in message


def test_the_request_that_killed_the_server_is_refused(servable):
    """100,000 users with k = the catalogue (1 MB of ids) ran the server to 22 GB."""
    request = _request(user_id=_users(100_000), k=np.array([40], np.int32))
    message = _refused(servable, request, Limits())
    assert "batch size 100000" in message and "--max_batch_size" in message


def test_rows_times_k_over_the_limit_name_max_batch_k(servable):
    request = _request(user_id=_users(5000), k=np.array([40], np.int32))
    message = _refused(servable, request, Limits(max_batch_k=100_000))
    assert "5000 rows x k=40 = 200000 results" in message and "--max_batch_k" in message


def test_wide_exclusions_name_max_input_elements(servable):
    exclude = np.full((50, 30), b"i1", dtype=object)
    message = _refused(servable, _request(user_id=_users(50), exclude_item_ids=exclude),
                       Limits(max_input_elements=1000))
    assert "'exclude_item_ids'" in message and "1500 elements" in message
    assert "--max_input_elements" in message


def test_a_declared_shape_is_measured_before_it_is_expanded(servable, monkeypatch):
    """One value declaring 10^9 elements: make_ndarray would fill 10^9 strings."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"u1"],
                                   tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                       dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=10**9)]))
    expanded = []
    monkeypatch.setattr(tf, "make_ndarray", lambda *args: expanded.append(args))
    message = _refused(servable, _request(user_id=proto), Limits())
    assert "1000000000 elements" in message and "--max_input_elements" in message
    assert expanded == []


def test_a_negative_declared_dimension_is_refused(servable):
    """TF Serving cannot parse such a tensor; numpy would read the one value as shape [1]."""
    proto = tf.make_tensor_proto(np.array([b"u1"], dtype=object))
    proto.tensor_shape.dim[0].size = -5
    message = _refused(servable, _request(user_id=proto), Limits())
    assert "declares shape [-5]" in message and "cannot be negative" in message


def test_limits_are_flags_and_must_be_positive():
    args = build_parser().parse_args(["--model_base_path", "/m", "--max_batch_k", "500",
                                      "--batch_chunk_rows", "8"])
    limits = limits_module.from_args(args)
    assert (limits.max_batch_k, limits.batch_chunk_rows) == (500, 8)
    assert limits.max_batch_size == Limits().max_batch_size
    with pytest.raises(ValueError, match="--max_batch_size must be positive"):
        Limits(max_batch_size=0)


# === Chunks give the answer of one call ===

def test_chunks_answer_as_one_call_with_rows_of_different_k(servable, assert_close):
    """37 rows, k from 1 to 10 by row, categories and exclusions by row: chunks of 5 rows have
    narrower answers than the whole (K = max k of the chunk), padded back to one width."""
    rows = 37
    k = (np.arange(rows) % 10 + 1).astype(np.int32)
    k[12] = 40  # only chunk 2 is this wide
    category = np.array([[b"", b"c0", b"c2"][row % 3] for row in range(rows)], dtype=object)
    exclude = np.array([[f"i{(row + col) % 40}".encode() for col in range(3)]
                        for row in range(rows)], dtype=object)
    request = _request(user_id=_users(rows), k=k, category=category, exclude_item_ids=exclude)
    whole = _outputs(predict(servable, request, limits=Limits(batch_chunk_rows=1000)))
    assert servable.calls == [rows]
    chunked = _outputs(predict(servable, request, limits=Limits(batch_chunk_rows=5)))
    assert servable.calls[1:] == [5] * 7 + [2]
    assert chunked["item_ids"].shape == whole["item_ids"].shape == (rows, 40)
    np.testing.assert_array_equal(chunked["item_ids"], whole["item_ids"])
    np.testing.assert_array_equal(chunked["cold_start"], whole["cold_start"])
    padding = np.isneginf(whole["scores"])
    np.testing.assert_array_equal(np.isneginf(chunked["scores"]), padding)
    assert_close(chunked["scores"][~padding], whole["scores"][~padding], ulps=8)
    assert (chunked["item_ids"][padding] == b"").all()


def test_inputs_of_batch_size_one_go_whole_to_every_chunk(servable):
    request = _request(user_id=_users(9), k=np.array([3], np.int32),
                       category=np.array([b"c1"], dtype=object))
    outputs = _outputs(predict(servable, request, limits=Limits(batch_chunk_rows=4)))
    assert servable.calls == [4, 4, 1]
    assert outputs["item_ids"].shape == (9, 3)


# === An abandoned request stops within one chunk ===

def test_a_deadline_passing_mid_batch_stops_the_remaining_chunks(servable):
    remaining = iter([1.0, 1.0, -0.1])
    with pytest.raises(ServingError) as error:
        predict(servable, _request(user_id=_users(40)), Deadline(lambda: next(remaining)),
                Limits(batch_chunk_rows=5))
    assert error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "before rows 10..14 of 40" in error.value.message
    assert servable.calls == [5, 5]


def test_a_cancelled_request_stops(servable):
    active = iter([True, False])
    with pytest.raises(ServingError) as error:
        predict(servable, _request(user_id=_users(40)), Deadline(None, lambda: next(active)),
                Limits(batch_chunk_rows=5))
    assert error.value.code == grpc.StatusCode.CANCELLED
    assert servable.calls == [5]


def test_a_client_deadline_stops_the_servers_work(export_base, serve, monkeypatch):
    """Issue 15: requests whose deadline had passed kept computing. Each chunk here takes 50 ms;
    the client gives up after 0.3 s, so the server must stop after a handful of the 100 chunks."""
    export_base.add("toy", 1)
    server = serve(export_base.config({"toy": None}), limits=Limits(batch_chunk_rows=1))
    server.wait_until_available("toy", timeout=60)
    servable = server.manager.servable("toy")
    calls, run = [], servable.run

    def slow(signature_name, inputs):
        calls.append(time.monotonic())
        time.sleep(0.05)
        return run(signature_name, inputs)

    monkeypatch.setattr(servable, "run", slow)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                _request(user_id=_users(100)), timeout=0.3)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(1.0)  # long enough for 20 more chunks, had the server carried on
    assert 1 <= len(calls) < 20, f"{len(calls)} of 100 chunks ran after the client gave up"


# === gRPC and REST give the same answer ===

def test_grpc_and_rest_refuse_an_oversized_request_alike(export_base, serve):
    export_base.add("toy", 1)
    server = serve(export_base.config({"toy": None}), rest_port=0,
                   limits=Limits(max_batch_k=100))
    server.wait_until_available("toy", timeout=60)
    users = [f"u{index}" for index in range(20)]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                _request(user_id=_users(20), k=np.array([10], np.int32)), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "20 rows x k=10 = 200 results; the limit is 100 (--max_batch_k)" in error.value.details()
    body = json.dumps({"signature_name": "recommend", "inputs": {"user_id": users, "k": [10]}})
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict", data=body.encode(),
        headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(request, timeout=10)
    assert http_error.value.code == 400
    assert json.loads(http_error.value.read())["error"] == error.value.details()


def test_concurrent_chunked_requests_answer_correctly(shared_server, reference, assert_close):
    """Chunked requests from several threads at once each get their own rows back."""
    answers = {}

    def ask(offset):
        users = np.roll(_users(20), offset)
        request = _request(user_id=users, k=np.array([4], np.int32))
        servable = shared_server.manager.servable("toy", version=1)
        answers[offset] = (users, _outputs(predict(servable, request,
                                                   limits=Limits(batch_chunk_rows=3))))

    threads = [threading.Thread(target=ask, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for users, outputs in answers.values():
        expected = recommend_in_process(reference(0), users, k=4)
        np.testing.assert_array_equal(outputs["item_ids"], expected["item_ids"])
        assert_close(outputs["scores"], expected["scores"], ulps=8)
    assert len(answers) == 4


# === The run gate ===

def test_the_gate_bounds_concurrent_runs_and_serves_fewest_rows_first():
    gate = limits_module.RunGate(slots=1)
    order, started = [], threading.Event()
    release = threading.Event()

    def hold():
        with gate.slot(1):
            started.set()
            release.wait(10)

    def run(rows):
        with gate.slot(rows):
            order.append(rows)

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(10)
    waiting = []
    for rows in (5000, 300, 1):  # queued while the slot is held, largest first
        waiting.append(threading.Thread(target=run, args=(rows,)))
        waiting[-1].start()
        time.sleep(0.05)
    assert order == [], "a second call ran while the only slot was held"
    release.set()
    for thread in [holder, *waiting]:
        thread.join(10)
    assert order == [1, 300, 5000]


def test_a_call_that_gives_up_while_waiting_leaves_the_queue():
    gate = limits_module.RunGate(slots=1)
    with gate.slot(1):
        checks = iter([None, None])

        def check():
            if next(checks, "expired") == "expired":
                raise TimeoutError("expired")

        with pytest.raises(TimeoutError):
            with gate.slot(10, check):
                pass
    with gate.slot(1):  # the slot came back: nothing is stuck on the withdrawn entry
        pass
    assert gate._running == 0 and gate._waiting == []


def test_grpc_calls_over_the_concurrency_limit_are_resource_exhausted(export_base, serve,
                                                                       monkeypatch):
    """Queued calls hold their messages: beyond --grpc_max_concurrent_rpcs they are refused."""
    export_base.add("toy", 1)
    server = serve(export_base.config({"toy": None}), limits=Limits(grpc_max_concurrent_rpcs=2))
    servable = server.manager.servable("toy")
    release, run = threading.Event(), servable.run
    monkeypatch.setattr(servable, "run", lambda *args: (release.wait(10), run(*args))[1])
    codes = []
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        held = [stub.Predict.future(_request(user_id=_users(1)), timeout=20) for _ in range(2)]
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(_request(user_id=_users(1)), timeout=10)
        release.set()
        codes = [future.code() for future in held]
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert codes == [grpc.StatusCode.OK] * 2


def test_large_requests_leave_one_slot_free_for_small_ones():
    gate = limits_module.RunGate(slots=2, small_rows=16)
    release, running = threading.Event(), []

    def run(rows):
        with gate.slot(rows):
            running.append(rows)
            release.wait(10)

    threads = [threading.Thread(target=run, args=(rows,)) for rows in (5000, 300)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    assert running == [5000], "a second large request took the slot kept for small ones"
    small = threading.Thread(target=run, args=(1,))
    small.start()
    time.sleep(0.2)
    assert sorted(running) == [1, 5000]
    release.set()
    for thread in [*threads, small]:
        thread.join(10)
    assert sorted(running) == [1, 300, 5000]
    assert (gate._running, gate._running_large) == (0, 0)
