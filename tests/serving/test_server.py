"""The gRPC server as a TF Serving client sees it: the official stubs, real sockets.

Answers must equal the SavedModel called in-process; bad requests must get TF Serving's codes
with messages naming the problem, and the server must answer the next good request.
"""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tfrec_fashion_serving import predict as predict_module
from tfrec_fashion_serving.errors import ServingError
from tfrec_fashion_serving.limits import Limits
from tfrec_fashion_serving.model_manager import State
from tfrec_fashion_serving.server import PredictionServicer
from tfrec_fashion_serving.testing import recommend_in_process

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _strings(values):
    """A DT_STRING TensorProto of (nested lists of) str."""
    return tf.make_tensor_proto(np.array(values, dtype=object).astype(bytes).astype(object))


def _request(signature="recommend", version=None, label=None, name="toy", **inputs):
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    request = predict_pb2.PredictRequest(model_spec=spec)
    for alias, proto in inputs.items():
        request.inputs[alias].CopyFrom(proto)
    return request


def _good_request(**kwargs):
    return _request(user_id=_strings(["u1"]), **kwargs)


def _outputs(response):
    return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}


@pytest.fixture(scope="module")
def channel(shared_server):
    with grpc.insecure_channel(f"127.0.0.1:{shared_server.port}") as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _assert_same_recommendations(served, expected, assert_close, ulps=16):
    """The default budget is for the same signature on the same inputs: the server runs the
    SavedModel's own function."""
    np.testing.assert_array_equal(served["item_ids"], expected["item_ids"])
    assert_close(served["scores"], expected["scores"], ulps=ulps)
    np.testing.assert_array_equal(served["cold_start"], expected["cold_start"])


# === Answers equal the SavedModel in-process ===

def test_recommend_equals_the_saved_model_in_process(stub, reference, assert_close):
    request = _request(user_id=_strings(["u1", "u5", "nobody"]),
                       k=tf.make_tensor_proto(np.array([5], np.int32)),
                       category=_strings(["c2"]),
                       exclude_item_ids=_strings([["i1", "i2"]]))
    response = stub.Predict(request, timeout=10)
    assert response.model_spec.name == "toy"
    assert response.model_spec.version.value == 2  # latest
    assert response.model_spec.signature_name == "recommend"
    expected = recommend_in_process(reference(1), ["u1", "u5", "nobody"], k=5, category="c2",
                                    exclude=[["i1", "i2"]])
    served = _outputs(response)
    _assert_same_recommendations(served, expected, assert_close)
    assert served["cold_start"].tolist() == [False, False, True]


def test_defaults_fill_inputs_the_request_leaves_out(stub, reference, assert_close):
    response = stub.Predict(_request(signature="", user_id=_strings(["u3"])), timeout=10)
    assert response.model_spec.signature_name == "serving_default"
    served = _outputs(response)
    assert served["item_ids"].shape == (1, 10)  # k defaults to 10
    _assert_same_recommendations(served, recommend_in_process(reference(1), ["u3"]),
                                 assert_close)


def test_score_and_user_query_equal_the_saved_model(stub, reference, assert_close):
    model = reference(1)
    items = np.array([[b"i0", b"i7", b"i39"], [b"i3", b"i3", b"i1"]], dtype=object)
    users = np.array([b"u2", b"stranger"], dtype=object)
    served = _outputs(stub.Predict(_request(
        "score", user_id=tf.make_tensor_proto(users), item_ids=tf.make_tensor_proto(items)),
        timeout=10))
    expected = model.signatures["score"](user_id=tf.constant(users), item_ids=tf.constant(items))
    assert_close(served["scores"], expected["scores"].numpy())  # the same function and inputs
    served = _outputs(stub.Predict(_request("user_query", user_id=tf.make_tensor_proto(users)),
                                   timeout=10))
    expected = model.signatures["user_query"](user_id=tf.constant(users))
    assert_close(served["query"], expected["query"].numpy())
    assert served["cold_start"].tolist() == [False, True]


def test_output_filter_returns_only_the_outputs_asked_for(stub):
    request = _good_request()
    request.output_filter.append("item_ids")
    assert set(stub.Predict(request, timeout=10).outputs) == {"item_ids"}


@pytest.mark.parametrize("choice, version, seed", [
    (dict(version=1), 1, 0), (dict(version=2), 2, 1),
    (dict(label="stable"), 1, 0), (dict(label="canary"), 2, 1)])
def test_requested_version_or_label_answers(stub, reference, choice, version, seed,
                                            assert_close):
    response = stub.Predict(_good_request(**choice), timeout=10)
    assert response.model_spec.version.value == version
    _assert_same_recommendations(_outputs(response),
                                 recommend_in_process(reference(seed), ["u1"]), assert_close)


# === Metadata, status, health ===

def test_metadata_lists_signatures_with_dtypes_shapes_and_defaults(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="toy"), metadata_field=["signature_def"])
    response = stub.GetModelMetadata(request, timeout=10)
    assert response.model_spec.version.value == 2
    packed = response.metadata["signature_def"]
    assert packed.type_url.endswith("tensorflow.serving.SignatureDefMap")
    signatures = get_model_metadata_pb2.SignatureDefMap()
    packed.Unpack(signatures)
    assert {"recommend", "serving_default", "score", "user_query"} <= set(
        signatures.signature_def)
    recommend = signatures.signature_def["recommend"]
    shapes = {alias: ([d.size for d in info.tensor_shape.dim], info.dtype)
              for alias, info in recommend.inputs.items()}
    assert shapes == {"user_id": ([-1], tf.string.as_datatype_enum),
                      "k": ([-1], tf.int32.as_datatype_enum),
                      "category": ([-1], tf.string.as_datatype_enum),
                      "exclude_item_ids": ([-1, -1], tf.string.as_datatype_enum),
                      "exclude_seen": ([-1], tf.bool.as_datatype_enum)}
    assert recommend.outputs["scores"].dtype == tf.float32.as_datatype_enum
    assert tf.make_ndarray(recommend.defaults["k"]).tolist() == [10]
    assert signatures.signature_def["user_query"].outputs["query"].tensor_shape.dim[1].size == 8


def test_metadata_needs_the_signature_def_field(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="toy"), metadata_field=["nonsense"])
    with pytest.raises(grpc.RpcError) as error:
        stub.GetModelMetadata(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "signature_def" in error.value.details()


def test_model_status_reports_each_version(channel):
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    response = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name="toy")), timeout=10)
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] \
        == [(2, State.AVAILABLE, 0), (1, State.AVAILABLE, 0)]
    one = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name="toy", version_label="stable")), timeout=10)
    assert [s.version for s in one.model_version_status] == [1]
    with pytest.raises(grpc.RpcError) as error:
        models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name="nope")), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "Could not find any versions of model nope" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_check_overall_and_per_model(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "toy"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service),
                            timeout=10).status == SERVING
    with pytest.raises(grpc.RpcError) as error:
        health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


# === Bad requests ===

BAD_REQUESTS = {
    "unknown model": (lambda: _good_request(name="nope"),
                      grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
    "no model name": (lambda: _good_request(name=""),
                      grpc.StatusCode.INVALID_ARGUMENT, "model_spec.name is empty"),
    "unknown version": (lambda: _good_request(version=9),
                        grpc.StatusCode.NOT_FOUND, "Specific(toy, 9)"),
    "unknown label": (lambda: _good_request(label="beta"), grpc.StatusCode.INVALID_ARGUMENT,
                      "Unrecognized servable version label: beta"),
    "unknown signature": (lambda: _good_request(signature="nope"),
                          grpc.StatusCode.FAILED_PRECONDITION,
                          'Serving signature key "nope" not found'),
    "unknown input": (lambda: _request(user_id=_strings(["u1"]), usr=_strings(["u1"])),
                      grpc.StatusCode.INVALID_ARGUMENT, "['usr'] are not inputs of signature"),
    "missing input": (lambda: _request("score", user_id=_strings(["u1"])),
                      grpc.StatusCode.INVALID_ARGUMENT, "Missing but required: ['item_ids']"),
    "wrong dtype": (lambda: _request(user_id=_strings(["u1"]),
                                     k=tf.make_tensor_proto(np.array([3], np.int64))),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Input 'k' of signature 'recommend' expects DT_INT32, received DT_INT64"),
    "wrong rank": (lambda: _request(user_id=tf.make_tensor_proto(np.array([[b"u1"]], object))),
                   grpc.StatusCode.INVALID_ARGUMENT,
                   "Input 'user_id' of signature 'recommend' expects shape [-1]"),
    "k out of range": (lambda: _request(user_id=_strings(["u1"]),
                                        k=tf.make_tensor_proto(np.array([41], np.int32))),
                       grpc.StatusCode.INVALID_ARGUMENT, "k must be in [1, 40]"),
    "unknown category": (lambda: _request(user_id=_strings(["u1"]), category=_strings(["hats"])),
                         grpc.StatusCode.INVALID_ARGUMENT, "unknown category"),
    "unknown item": (lambda: _request("score", user_id=_strings(["u1"]),
                                      item_ids=_strings([["i1", "zzz"]])),
                     grpc.StatusCode.INVALID_ARGUMENT, "unknown item id"),
    "unknown output": (lambda: _filtered("nope"), grpc.StatusCode.INVALID_ARGUMENT,
                       "output tensor alias not found in signature 'recommend': nope"),
}


def _filtered(alias):
    request = _good_request()
    request.output_filter.append(alias)
    return request


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_the_right_code_and_the_server_carries_on(stub, case):
    make_request, code, message = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(make_request(), timeout=10)
    assert error.value.code() == code, error.value.details()
    assert message in error.value.details()
    assert stub.Predict(_good_request(), timeout=10).outputs["item_ids"].tensor_shape.dim


def test_classify_and_regress_say_to_use_predict(stub):
    spec = model_pb2.ModelSpec(name="toy", signature_name="recommend")
    for call, request in [(stub.Classify, classification_pb2.ClassificationRequest(
            model_spec=spec)), (stub.Regress, regression_pb2.RegressionRequest(model_spec=spec))]:
        with pytest.raises(grpc.RpcError) as error:
            call(request, timeout=10)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "'recommend'" in error.value.details() and "Predict" in error.value.details()


def test_an_unexpected_failure_is_internal_and_the_server_carries_on(stub, shared_server,
                                                                     monkeypatch):
    servable = shared_server.manager.servable("toy", version=2)

    def broken(signature_name, inputs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(servable, "run", broken)
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(_good_request(), timeout=10)
    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert "RuntimeError: disk on fire" in error.value.details()
    monkeypatch.undo()
    assert stub.Predict(_good_request(), timeout=10).model_spec.version.value == 2


# === Deadlines ===

def test_a_passed_deadline_is_deadline_exceeded(stub):
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(_good_request(), timeout=1e-6)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert stub.Predict(_good_request(), timeout=10).model_spec.version.value == 2


def test_fixed_dimensions_are_checked():
    info = predict_module.TensorInfo()
    info.tensor_shape.dim.add(size=-1)
    info.tensor_shape.dim.add(size=8)
    predict_module.check_shape("embed", "x", info, (3, 8))
    with pytest.raises(ServingError, match=r"expects shape \[-1, 8\].*received shape \[3, 7\]"):
        predict_module.check_shape("embed", "x", info, (3, 7))


class _Aborted(Exception):
    pass


class _Context:
    """A grpc.ServicerContext with a chosen time_remaining, recording abort()."""

    def __init__(self, remaining):
        self.remaining = remaining

    def time_remaining(self):
        return self.remaining()

    def is_active(self):
        return True

    def abort(self, code, details):
        self.code, self.details = code, details
        raise _Aborted


def test_the_server_checks_the_deadline_before_running(shared_server, monkeypatch):
    servable = shared_server.manager.servable("toy")
    runs = []
    monkeypatch.setattr(servable, "run", lambda *args: runs.append(args))
    context = _Context(lambda: 0.0)
    with pytest.raises(_Aborted):
        PredictionServicer(shared_server.manager).Predict(_good_request(), context)
    assert context.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "before rows 0..0 of 1 of signature 'recommend'" in context.details
    assert runs == []


def test_a_deadline_passing_while_running_is_deadline_exceeded(shared_server):
    servable = shared_server.manager.servable("toy")
    clock = iter([1.0, -0.5])
    with pytest.raises(ServingError) as error:
        predict_module.predict(servable, _good_request(), predict_module.Deadline(
            lambda: next(clock)))
    assert error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "after running signature 'recommend'" in error.value.message


# === Versions coming and going under load ===

class PredictLoop:
    """Sends Predict requests back to back from a thread; records versions and failures."""

    def __init__(self, port):
        self.versions, self.failures, self.answers = [], [], {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(port,))

    def _run(self, port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not self._stop.is_set():
                try:
                    response = stub.Predict(_good_request(), timeout=10)
                except grpc.RpcError as error:
                    self.failures.append(f"{error.code()}: {error.details()}")
                    continue
                version = response.model_spec.version.value
                self.versions.append(version)
                self.answers[version] = _outputs(response)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def wait_for_version(self, version, timeout=30.0):
        deadline = time.monotonic() + timeout
        while version not in self.versions and time.monotonic() < deadline:
            time.sleep(0.05)
        assert version in self.versions, f"version {version} never answered: {self.failures}"


def _health(port, service=""):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_a_new_version_is_picked_up_with_zero_failed_requests(export_base, serve, reference,
                                                              assert_close):
    server = serve(export_base.config({"toy": None}), wait_for_models=False)
    assert _health(server.port) == NOT_SERVING  # nothing exported yet
    export_base.add("toy", 1, seed=0)
    server.wait_until_available("toy", timeout=30)
    assert _health(server.port, "toy") == SERVING
    with PredictLoop(server.port) as loop:
        loop.wait_for_version(1)
        export_base.add("toy", 2, seed=1)
        loop.wait_for_version(2)
        time.sleep(3 * 0.2)
    assert loop.failures == []
    first_new = loop.versions.index(2)
    assert set(loop.versions[:first_new]) == {1} and set(loop.versions[first_new:]) == {2}
    _assert_same_recommendations(loop.answers[2], recommend_in_process(reference(1), ["u1"]),
                                 assert_close)
    states = dict(server.manager.version_states("toy"))
    assert states[1].state == State.END and states[2].state == State.AVAILABLE


def test_a_removed_version_is_unloaded(export_base, serve):
    export_base.add("toy", 1)
    export_base.add("toy", 2, seed=1)
    server = serve(export_base.config({"toy": 'model_version_policy { all {} }'}))
    server.wait_until_available("toy", timeout=30, version=1)
    server.wait_until_available("toy", timeout=30, version=2)
    export_base.remove("toy", 1)
    deadline = time.monotonic() + 10
    while 1 in server.manager.available_versions("toy") and time.monotonic() < deadline:
        time.sleep(0.05)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        own = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            own.Predict(_good_request(version=1), timeout=10)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert own.Predict(_good_request(), timeout=10).model_spec.version.value == 2
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(
                model_spec=model_pb2.ModelSpec(name="toy")), timeout=10)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (2, State.AVAILABLE), (1, State.END)]


def test_messages_over_the_size_limit_are_refused(export_base, serve):
    server = serve(export_base.config({"toy": None}), limits=Limits(max_request_bytes=1024),
                   wait_for_models=False)
    request = _request(user_id=_strings(["u" * 2000]))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request,
                                                                               timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# === The command line ===

def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_line_serves_until_sigterm(export_base):
    export_base.add("toy", 1)
    config = export_base.config({"toy": None})
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tfrec_fashion_serving.server", f"--model_config_file={config}",
         f"--port={port}", "--file_system_poll_wait_seconds=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if _health(port, "toy") == SERVING:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        assert _health(port, "toy") == SERVING
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"serving gRPC on 127.0.0.1:{port}" in output


# === The approximate index (the real AnnIndex; ScaNN is optional) ===

@pytest.mark.skipif(importlib.util.find_spec("scann") is None,
                    reason="ScaNN not installed (optional): pip install tfrec-fashion[ann]")
def test_recommend_approximate_over_grpc_with_the_real_ann_index(export_base, serve,
                                                                 saved_versions, assert_close):
    from tfrec_fashion_export.ann_index import (
        build_ann_index,  # numpy + ScaNN, no library
    )

    catalogue, _ = saved_versions[0]
    version = export_base.add("toy", 1)
    build_ann_index(catalogue.item_vectors, catalogue.item_ids, catalogue.item_categories,
                    os.path.join(version, "assets.extra", "ann"))
    server = serve(export_base.config({"toy": None}))
    server.wait_until_available("toy", timeout=30)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        metadata = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name="toy"), metadata_field=["signature_def"]))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        metadata.metadata["signature_def"].Unpack(signatures)
        assert signatures.signature_def["recommend_approximate"] == \
            signatures.signature_def["recommend"]
        inputs = dict(user_id=_strings(["u1", "u2", "nobody"]),
                      k=tf.make_tensor_proto(np.array([6], np.int32)),
                      category=_strings(["c0"]), exclude_item_ids=_strings([["i3", "i6"]]))
        exact = _outputs(stub.Predict(_request("recommend", **inputs), timeout=10))
        approximate = stub.Predict(_request("recommend_approximate", **inputs), timeout=10)
        assert approximate.model_spec.signature_name == "recommend_approximate"
        # 40 items: searched exactly, by ScaNN's own 8-term dot products (2 (n - 1) = 14 ulps
        # of their terms for any order of summation).
        _assert_same_recommendations(_outputs(approximate), exact, assert_close, ulps=14)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(_request("recommend_approximate", user_id=_strings(["u1"]),
                                  k=tf.make_tensor_proto(np.array([41], np.int32))), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must be in [1, 40]" in error.value.details()
