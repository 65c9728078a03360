"""Start-up and shutdown as TF Serving's: listen only once the configured models are available,
refuse what TF Serving refuses at start-up, bind the port exclusively, drain on stop / SIGTERM.
"""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tfrec_fashion_serving import server as server_module
from tfrec_fashion_serving.model_manager import ModelLoadError, ModelManager
from tfrec_fashion_serving.servable import Servable
from tfrec_fashion_serving.server import start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LABEL_REFUSED = ("Request to assign label to version 3 of model toy, which is not currently "
                 "available for inference")


def _predict_request(user="u1", name="toy"):
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=name, signature_name="user_query"))
    request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(np.array([user.encode()], object)))
    return request


def _health(port, service=""):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10).status


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts_connections(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _write_broken_version(export_base, model, version):
    directory = os.path.join(export_base.root, model, str(version))
    os.makedirs(directory)
    with open(os.path.join(directory, "saved_model.pb"), "wb") as handle:
        handle.write(b"not a SavedModel")
    return directory


# === Start-up: listen once every configured model is available ===

def test_the_first_request_after_start_up_is_answered(export_base, serve):
    export_base.add("toy", 1)
    export_base.add("other", 2, seed=1)
    server = serve(export_base.config({"toy": None, "other": None}))
    # No waiting: start_server returned, so every configured model already answers.
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(_predict_request(), timeout=10).model_spec.version.value == 1
        assert stub.Predict(_predict_request(name="other"),
                            timeout=10).model_spec.version.value == 2
    assert _health(server.port) == SERVING


def test_start_up_waits_for_a_model_with_no_version_and_the_port_stays_closed(
        export_base, serve, caplog):
    export_base.add("toy", 1)
    config = export_base.config({"toy": None, "late": None})
    port = _free_port()
    started = []
    caplog.set_level(logging.INFO, logger="tfrec_fashion_serving.model_manager")
    thread = threading.Thread(target=lambda: started.append(serve(config, port=port)))
    thread.start()
    try:
        _wait_for(lambda: any("waiting for model late" in m for m in caplog.messages),
                  what="the start-up log naming the awaited model")
        assert not _accepts_connections(port)  # toy is loaded, but "late" is not: not listening
        export_base.add("late", 1, seed=1)
        thread.join(timeout=60)
    finally:
        thread.join(timeout=60)
    assert started and started[0].port == port
    assert _health(port) == SERVING and _health(port, "late") == SERVING


def test_a_version_failing_to_load_at_start_up_stops_start_up(export_base):
    export_base.add("toy", 1)
    broken = _write_broken_version(export_base, "toy", 2)
    port = _free_port()
    with pytest.raises(ModelLoadError, match=r"model toy version 2 failed to load: .*"
                                             + re.escape(broken)):
        start_server(export_base.config({"toy": "model_version_policy { all {} }"}),
                     port=port, poll_seconds=0.2)
    assert not _accepts_connections(port)


def test_start_up_gives_up_after_the_startup_timeout(export_base):
    with pytest.raises(TimeoutError, match=r"\['toy'\].*within the start-up timeout of 0.3 s"):
        start_server(export_base.config({"toy": None}), port=0, poll_seconds=0.1,
                     startup_timeout=0.3)


def test_the_command_line_exits_1_naming_a_model_that_is_not_available(export_base, capsys):
    _write_broken_version(export_base, "toy", 1)
    config = export_base.config({"toy": None, "late": None})
    assert server_module.main([f"--model_config_file={config}", "--port=0",
                               "--file_system_poll_wait_seconds=0.1"]) == 1
    assert "model toy version 1 failed to load" in capsys.readouterr().err
    config = export_base.config({"late": None})
    assert server_module.main([f"--model_config_file={config}", "--port=0",
                               "--file_system_poll_wait_seconds=0.1",
                               "--model_startup_timeout_seconds=0.3"]) == 1
    assert "['late'] became available within the start-up timeout" in capsys.readouterr().err


def test_overall_health_needs_every_configured_model(export_base, serve):
    export_base.add("toy", 1)
    server = serve(export_base.config({"toy": None, "other": None}), wait_for_models=False)
    server.wait_until_available("toy", timeout=30)
    assert _health(server.port, "toy") == SERVING
    assert _health(server.port, "other") == NOT_SERVING
    assert _health(server.port) == NOT_SERVING
    export_base.add("other", 1, seed=1)
    server.wait_until_available("other", timeout=30)
    _wait_for(lambda: _health(server.port) == SERVING, what="overall SERVING")


# === Start-up: refused configs ===

@pytest.mark.parametrize("wait_for_models", [True, False])
def test_a_label_on_a_version_that_does_not_exist_refuses_start_up(export_base,
                                                                   wait_for_models):
    export_base.add("toy", 1)
    config = export_base.config({"toy": 'version_labels { key: "stable" value: 3 }'})
    with pytest.raises(ValueError, match=LABEL_REFUSED):
        start_server(config, port=0, poll_seconds=0.2, wait_for_models=wait_for_models)


def test_a_label_on_a_version_the_policy_does_not_serve_refuses_start_up(export_base):
    export_base.add("toy", 1)
    export_base.add("toy", 2, seed=1)  # "latest" serves 2 only
    config = export_base.config({"toy": 'version_labels { key: "stable" value: 1 }'})
    with pytest.raises(ValueError, match="assign label to version 1 of model toy"):
        start_server(config, port=0, poll_seconds=0.2)


def test_a_config_edit_labelling_a_missing_version_is_refused_until_it_exists(export_base,
                                                                               caplog):
    export_base.add("toy", 1)
    config = export_base.config({"toy": 'model_version_policy { all {} } '
                                        'version_labels { key: "stable" value: 1 }'})
    manager = ModelManager(config)
    manager.poll_once()
    export_base.config({"toy": 'model_version_policy { all {} } '
                               'version_labels { key: "stable" value: 1 } '
                               'version_labels { key: "canary" value: 3 }'})
    os.utime(config, ns=(0, 10**18))  # a new mtime, even within the file system's resolution
    manager.poll_once()
    manager.poll_once()
    refusals = [m for m in caplog.messages if "refused, keeping the previous one" in m]
    assert len(refusals) == 1 and LABEL_REFUSED in refusals[0]  # logged once, not every pass
    assert manager.servable("toy", label="stable").version == 1  # the previous config serves
    with pytest.raises(Exception, match="Unrecognized servable version label: canary"):
        manager.servable("toy", label="canary")
    export_base.add("toy", 3, seed=1)  # the labelled version appears: the edit is taken
    manager.poll_once()
    assert manager.servable("toy", label="canary").version == 3


def test_an_empty_version_directory_is_warned_about_once(export_base, caplog):
    export_base.add("toy", 1)
    empty = os.path.join(export_base.root, "toy", "5")
    os.makedirs(empty)
    manager = ModelManager(export_base.config({"toy": None}))
    manager.poll_once()
    manager.poll_once()
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and empty in r.getMessage()]
    assert len(warnings) == 1 and "holds no saved_model.pb" in warnings[0]
    assert manager.available_versions("toy") == [1]


# === One server per port ===

def test_a_second_server_on_the_same_port_is_refused(export_base, serve, monkeypatch):
    export_base.add("toy", 1)
    config = export_base.config({"toy": None})
    first = serve(config)
    address = f"127.0.0.1:{first.port}"
    with pytest.raises(OSError, match=f"could not bind gRPC to {address}"):
        start_server(config, port=first.port)
    # The gRPC bind itself is exclusive too (gRPC Python would otherwise set SO_REUSEPORT).
    monkeypatch.setattr(server_module, "_refuse_used_port", lambda *args: None)
    with pytest.raises(OSError, match=f"could not bind gRPC to {address}"):
        start_server(config, port=first.port, poll_seconds=0.2)
    with grpc.insecure_channel(address) as channel:  # the first server is unaffected
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(_predict_request(), timeout=10).model_spec.version.value == 1


def test_the_command_line_exits_2_naming_a_port_in_use(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = server_module.main(["--model_base_path=/nowhere", f"--port={port}"])
    assert status == 2
    assert f"could not bind gRPC to 127.0.0.1:{port}" in capsys.readouterr().err


# === MultiInference ===

def test_an_empty_multi_inference_is_unimplemented(shared_server):
    with grpc.insecure_channel(f"127.0.0.1:{shared_server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.MultiInference(inference_pb2.MultiInferenceRequest(), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "MultiInference is not supported" in error.value.details()
    assert "use Predict" in error.value.details()


# === Shutdown drains ===

def _hold_slow_requests(monkeypatch):
    """Makes Predict for user "slow" wait until released; returns (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    run = Servable.run

    def held(self, signature_name, inputs):
        if b"slow" in inputs["user_id"].tolist():
            entered.set()
            release.wait(30)
        return run(self, signature_name, inputs)

    monkeypatch.setattr(Servable, "run", held)
    return entered, release


def test_stop_lets_calls_in_flight_finish_and_refuses_new_ones(export_base, serve,
                                                               monkeypatch):
    export_base.add("toy", 1)
    server = serve(export_base.config({"toy": None}))
    entered, release = _hold_slow_requests(monkeypatch)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        in_flight = stub.Predict.future(_predict_request("slow"), timeout=60)
        assert entered.wait(30)
        stopping = threading.Thread(target=server.stop, kwargs={"grace": 10})
        stopping.start()
        refused = []

        def new_call_refused():
            try:
                stub.Predict(_predict_request("u1"), timeout=5)
            except grpc.RpcError as error:
                refused.append(error.code())
            return bool(refused) and refused[-1] == grpc.StatusCode.UNAVAILABLE

        _wait_for(new_call_refused, timeout=15, what="a new call refused with UNAVAILABLE")
        assert not in_flight.done()  # the refusal came while the slow call was still running
        release.set()
        response = in_flight.result(timeout=30)
    assert response.model_spec.version.value == 1 and "query" in response.outputs
    stopping.join(timeout=30)
    assert not stopping.is_alive()
    assert server.manager.available_versions("toy") == []  # unloaded after the drain


SLOW_SERVER = textwrap.dedent("""
    import os, sys, time
    from tfrec_fashion_serving import servable, server

    run = servable.Servable.run

    def slow(self, signature_name, inputs):
        if b"slow" in inputs["user_id"].tolist():
            open(os.environ["SLOW_MARKER"], "w").close()
            time.sleep(2)
        return run(self, signature_name, inputs)

    servable.Servable.run = slow
    sys.exit(server.main(sys.argv[1:]))
""")


def test_sigterm_lets_a_request_in_flight_finish(export_base, tmp_path):
    export_base.add("toy", 1)
    config = export_base.config({"toy": None})
    port, marker = _free_port(), tmp_path / "slow-started"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVER, f"--model_config_file={config}", f"--port={port}",
         "--file_system_poll_wait_seconds=0.2", "--shutdown_grace_seconds=20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SLOW_MARKER": str(marker)})
    try:
        _wait_for(lambda: process.poll() is not None or _accepts_connections(port), timeout=90,
                  what="the server to listen")
        assert _health(port) == SERVING  # listening means the models are loaded
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            in_flight = stub.Predict.future(_predict_request("slow"), timeout=60)
            _wait_for(marker.exists, what="the slow request to start")
            process.send_signal(signal.SIGTERM)
            response = in_flight.result(timeout=60)
        assert response.model_spec.version.value == 1
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "calls in flight get up to 20 s" in output
