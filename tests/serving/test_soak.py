"""The server under heavy and sustained load (issue 15), in its own process, measured from
outside: ``/proc/PID/status`` for memory, the official stubs for answers and latency.

- The request that ran the demo's server to 22 GB (100,000 user ids, k = the catalogue size) is
  refused at once naming the flag, and a valid large batch (10,000 users) is answered row by row
  as the SavedModel answers, each within :data:`MEMORY_BOUND` of resident memory.
- While other clients keep sending heavy requests that expire (10,000 users, a 30 ms deadline),
  single-user requests keep their latency: p99 within ``2 x unloaded p99 + 5 ms`` (the floor
  absorbs scheduler noise on a busy 2-core machine), every heavy request is DEADLINE_EXCEEDED,
  and memory returns to within :data:`SETTLED_BOUND` of its level before the load.
- ``benchmarks/serving_soak.py`` for one minute at 4 clients (slow): no unexpected error, every
  new version answers, bounded memory growth.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc
from tfrec_fashion_serving import testing



def load_soak_benchmark():
    """``benchmarks/serving_soak.py`` (its :class:`ServerProcess`), imported by path."""
    if "serving_soak" not in sys.modules:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    return importlib.import_module("serving_soak")

MiB = 1024 * 1024
N_USERS, N_ITEMS, DIM = 1000, 1500, 32  # k = N_ITEMS asks for the whole catalogue
DEFAULT_CHUNK_ROWS = 256
MEMORY_BOUND = 300 * MiB  # peak (VmHWM) over resident memory before the request
SETTLED_BOUND = 100 * MiB  # resident memory after the load over before it
HEAVY_USERS, HEAVY_DEADLINE_S, HEAVY_CLIENTS = 10_000, 0.03, 4
LATENCY_REQUESTS = 400
# Within 2x of unloaded, plus a floor for the OS scheduler: on 2 cores shared by the server, its
# heavy chunks and both client processes, runnable threads outnumber cores and a p99 gains
# 5-10 ms from scheduling alone (unchanged with the load process at nice 10, Python's GC frozen,
# a 0.5 ms GIL switch interval or one TensorFlow thread per op). The faults this catches sit far
# above it: both slots open to heavy chunks gave 22 ms, chunks without the gate 1.1 s, and the
# attack measured 12 s while expired requests kept computing.
P99_FACTOR, P99_FLOOR_MS = 2.0, 12.0


@pytest.fixture(scope="module")
def catalogue_export(tmp_path_factory):
    """A toy export of a realistic catalogue: ``(models.config, loaded SavedModel)``."""
    base = tmp_path_factory.mktemp("soak") / "exports"
    catalogue = testing.ToyCatalogue.random(seed=3, n_users=N_USERS, n_items=N_ITEMS, dim=DIM,
                                            n_categories=8)
    path = testing.write_version(testing.ToyRecommender(catalogue), str(base / "toy"), 1)
    return testing.write_models_config(str(base), {"toy": None}), tf.saved_model.load(path)


@pytest.fixture(scope="module")
def default_server(catalogue_export):
    """A server subprocess with the default limits."""
    server = load_soak_benchmark().ServerProcess(catalogue_export[0])
    try:
        server.wait_serving("toy")
        yield server
    finally:
        server.stop()


def recommend_request(users: list[str] | np.ndarray, k: int) -> predict_pb2.PredictRequest:
    message = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="toy", signature_name="recommend"))
    message.inputs["user_id"].CopyFrom(tf.make_tensor_proto(np.asarray(users, dtype=object)))
    message.inputs["k"].CopyFrom(tf.make_tensor_proto(np.array([k], np.int32)))
    return message


def users(count: int) -> np.ndarray:
    return np.array([f"u{index % (N_USERS + 100)}".encode() for index in range(count)], object)


# === One huge request ===

@pytest.mark.parametrize("rows, flag", [(100_000, "(--max_batch_size)"),
                                        (10_000, "(--max_batch_k)")])
def test_the_request_that_killed_the_demo_is_refused_fast_in_bounded_memory(
        default_server, rows, flag):
    message = recommend_request(users(rows), N_ITEMS)
    before = default_server.memory()
    began = time.monotonic()
    with grpc.insecure_channel(default_server.target) as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(message,
                                                                               timeout=60)
    elapsed = time.monotonic() - began
    after = default_server.memory()
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert flag in error.value.details()
    print(f"{message.ByteSize() / MiB:.1f} MB request refused in {elapsed:.2f} s; RSS "
          f"{before['rss'] / MiB:.0f} -> {after['rss'] / MiB:.0f} MB, peak "
          f"{after['peak'] / MiB:.0f} MB")
    assert elapsed < 5
    assert after["peak"] - before["rss"] < MEMORY_BOUND
    assert default_server.alive()


def test_a_valid_large_batch_equals_the_saved_model_row_by_row(default_server,
                                                               catalogue_export, assert_close):
    """10,000 users with k=10 run in chunks of 256 rows; the reference runs the SavedModel
    over the same chunks (the same ops on the same shapes), so ids are equal and scores agree
    to a few ulps."""
    model, batch = catalogue_export[1], users(HEAVY_USERS)
    before = default_server.memory()
    with grpc.insecure_channel(default_server.target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            recommend_request(batch, 10), timeout=120)
    after = default_server.memory()
    served = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
    expected = [testing.recommend_in_process(model, batch[start:start + DEFAULT_CHUNK_ROWS],
                                             k=10)
                for start in range(0, len(batch), DEFAULT_CHUNK_ROWS)]
    expected = {alias: np.concatenate([part[alias] for part in expected]) for alias in served}
    assert served["item_ids"].shape == (HEAVY_USERS, 10)
    for row in range(HEAVY_USERS):
        np.testing.assert_array_equal(served["item_ids"][row], expected["item_ids"][row])
    assert_close(served["scores"], expected["scores"], ulps=4)
    np.testing.assert_array_equal(served["cold_start"], expected["cold_start"])
    print(f"RSS {before['rss'] / MiB:.0f} -> {after['rss'] / MiB:.0f} MB, peak "
          f"{after['peak'] / MiB:.0f} MB")
    assert after["peak"] - before["rss"] < MEMORY_BOUND


# === Deadlines under load ===

# Heavy clients in their own process (their own GIL): serialised request bytes sent as they are.
LOAD_SCRIPT = r"""
import collections, json, sys, threading, grpc
target, path, clients, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
body = open(path, "rb").read()
codes, lock, stop = collections.Counter(), threading.Lock(), threading.Event()
def client():
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        while not stop.is_set():
            try:
                call(body, timeout=timeout)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            with lock:
                codes[code] += 1
print("ready", flush=True)
sys.stdin.readline()
threads = [threading.Thread(target=client) for _ in range(clients)]
for thread in threads:
    thread.start()
sys.stdin.readline()
stop.set()
for thread in threads:
    thread.join()
print(json.dumps(codes), flush=True)
"""


def single_user_latencies(target: str, count: int) -> np.ndarray:
    """Milliseconds of ``count`` sequential one-user recommend requests (k=10)."""
    requests = [recommend_request([f"u{index % N_USERS}"], 10) for index in range(count)]
    latencies = []
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for message in requests[:20]:
            stub.Predict(message, timeout=30)
        for message in requests:
            began = time.perf_counter()
            stub.Predict(message, timeout=30)
            latencies.append((time.perf_counter() - began) * 1000)
    return np.array(latencies)


def settled_rss(server, baseline: int, seconds: float = 10.0) -> int:
    """Resident memory once it is back within SETTLED_BOUND of ``baseline`` (or after
    ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        rss = server.memory()["rss"]
        if rss - baseline < SETTLED_BOUND or time.monotonic() > deadline:
            return rss
        time.sleep(0.5)


@pytest.fixture(scope="module")
def under_load(default_server, tmp_path_factory):
    """Single-user latencies unloaded, then while HEAVY_CLIENTS clients (another process) keep
    sending 10,000-user requests with a 30 ms deadline; the heavy requests' codes; memory."""
    heavy = tmp_path_factory.mktemp("load") / "heavy.bin"
    heavy.write_bytes(recommend_request(users(HEAVY_USERS), 10).SerializeToString())
    load = subprocess.Popen(
        [sys.executable, "-c", LOAD_SCRIPT, default_server.target, str(heavy),
         str(HEAVY_CLIENTS), str(HEAVY_DEADLINE_S)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert load.stdout.readline().strip() == "ready"
        unloaded = single_user_latencies(default_server.target, LATENCY_REQUESTS)
        baseline = default_server.memory()["rss"]
        load.stdin.write("go\n")
        load.stdin.flush()
        time.sleep(1.0)
        loaded = single_user_latencies(default_server.target, LATENCY_REQUESTS)
        load.stdin.write("stop\n")
        load.stdin.flush()
        codes = json.loads(load.stdout.readline())
    finally:
        load.kill()
        load.wait()
    began = time.monotonic()
    single_user_latencies(default_server.target, 1)
    result = {"unloaded": unloaded, "loaded": loaded, "codes": codes, "baseline": baseline,
              "first_after_s": time.monotonic() - began,
              "settled": settled_rss(default_server, baseline),
              "peak": default_server.memory()["peak"]}
    print(f"\nsingle-user p50 {np.median(unloaded):.2f} / {np.median(loaded):.2f} ms, p99 "
          f"{np.percentile(unloaded, 99):.2f} / {np.percentile(loaded, 99):.2f} ms (unloaded / "
          f"loaded); heavy requests {codes}; RSS {baseline / MiB:.0f} MB before, peak "
          f"{result['peak'] / MiB:.0f} MB, {result['settled'] / MiB:.0f} MB after")
    return result


def test_expiring_heavy_requests_stop_and_memory_settles(default_server, under_load):
    assert set(under_load["codes"]) == {"DEADLINE_EXCEEDED"}
    assert under_load["codes"]["DEADLINE_EXCEEDED"] >= HEAVY_CLIENTS
    assert under_load["first_after_s"] < 1.0  # the demo's next request took 12 s
    assert under_load["settled"] - under_load["baseline"] < SETTLED_BOUND
    assert under_load["peak"] - under_load["baseline"] < MEMORY_BOUND
    assert default_server.alive()


def test_single_user_p99_under_expiring_heavy_load_stays_within_twice_unloaded(under_load):
    p99 = {name: float(np.percentile(under_load[name], 99)) for name in ("unloaded", "loaded")}
    assert p99["loaded"] <= P99_FACTOR * p99["unloaded"] + P99_FLOOR_MS, p99


# === The soak benchmark, for a minute ===

@pytest.mark.slow
def test_a_one_minute_soak_has_no_unexpected_errors_and_bounded_memory():
    """4 clients fit 2 cores; a new version every 15 s, so 3 swaps within the minute."""
    report = load_soak_benchmark().main(["--clients", "4", "--minutes", "1", "--swap-seconds",
                                         "15", "--items", "2000", "--users", "1000"])
    assert report["unexpected_errors"] == {}
    assert report["errors_by_code"].keys() <= {"INVALID_ARGUMENT"}
    assert report["requests"] > 1000
    assert report["versions_written"] >= 3
    assert len(report["versions_answered"]) >= report["versions_written"]  # each new one too
    assert report["rss_end_mb"] - report["rss_start_mb"] < 150
