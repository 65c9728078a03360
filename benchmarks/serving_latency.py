"""Benchmark: Predict on the ``recommend`` signature through our gRPC server (official TF Serving
stub, server in its own process) against the same SavedModel signature called in-process, with
1 and 16 concurrent clients (threads), measured in the same run.

    .venv/bin/python benchmarks/serving_latency.py [--seconds 6] [--rounds 3] [--users 1000]
    .venv/bin/python benchmarks/serving_latency.py --export-dir EXPORTS --model vbpr
    .venv/bin/python benchmarks/serving_latency.py --server-arg=--tensorflow_intra_op_parallelism=1

Without ``--export-dir`` it writes a contract-following SavedModel with the generator the
serving tests use (``tfrec_fashion_serving.testing``); with it, it serves that export base's
``models.config`` and benchmarks the latest version of ``--model``. Each request asks for the
top ``--k`` items of one known user. Each setting's ``--seconds`` are cut into ``--rounds``
slices that alternate in-process and gRPC, so load from elsewhere on the machine falls on both
alike. Prints p50 / p99 latency and throughput per setting, and the gRPC / in-process ratios:
the cost of the server (serialisation, gRPC, validation, a second process) over the signature
called the ordinary way, ``signature(**tensors)``, in the benchmark's own process. With 1
client it also times a health Check on the same channel, a unary call with no model work: the
Python gRPC round trip between two processes, the floor under the gRPC row.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow_serving.apis import prediction_log_pb2, prediction_service_pb2_grpc  # noqa: E402
from tfrec_fashion_serving import model_config, servable, testing  # noqa: E402
from tfrec_fashion_serving.client import predict_request, recommend_inputs  # noqa: E402

CLIENTS = (1, 16)
FLOOR = "gRPC health"  # a unary call with no model work: Python gRPC's own round trip


def write_toy_export(directory: str, users: int, items: int, dim: int) -> tuple[str, str]:
    """A toy export base: ``(models.config path, model name)``."""
    catalogue = testing.ToyCatalogue.random(seed=0, n_users=users, n_items=items, dim=dim,
                                            n_categories=8)
    testing.write_version(testing.ToyRecommender(catalogue), os.path.join(directory, "toy"), 1)
    return testing.write_models_config(directory, {"toy": None}), "toy"


def latest_version_dir(config_file: str, model: str) -> str:
    entries = {entry.name: entry for entry in model_config.read_config(config_file)}
    if model not in entries:
        raise SystemExit(f"model {model!r} is not in {config_file}; it has {sorted(entries)}")
    base = model_config.resolve_base_path(entries[model].base_path,
                                          os.path.dirname(os.path.abspath(config_file)))
    versions = model_config.discover_versions(base)
    if not versions:
        raise SystemExit(f"no versions of {model!r} under {base}")
    return versions[max(versions)]


def user_ids_of(version_dir: str, count: int) -> list[str]:
    """Known user ids, from the version's warm-up requests (the export writes real ones)."""
    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    users = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        if "user_id" in request.inputs:
            users += [u.decode() for u in tf.make_ndarray(request.inputs["user_id"])]
    known = [user for user in dict.fromkeys(users) if user != "nobody"]
    return (known * count)[:count] if known else [f"u{i}" for i in range(count)]


class ServerProcess:
    """``python -m tfrec_fashion_serving.server`` on a free port, until stopped."""

    def __init__(self, config_file: str, extra_args: tuple[str, ...] = ()):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfrec_fashion_serving.server",
             f"--model_config_file={config_file}", "--port=0", "--grpc_max_threads=32",
             *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.port = self._read_port()
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # drain

    def _read_port(self) -> int:
        for line in self.process.stdout:
            match = re.search(r"serving gRPC on [^ ]+:(\d+)", line)
            if match:
                return int(match.group(1))
        raise SystemExit(f"the server exited with status {self.process.wait()}")

    def wait_serving(self, model: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                status = health.Check(health_pb2.HealthCheckRequest(service=model)).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
                time.sleep(0.2)
        raise SystemExit(f"{model} not serving after {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def measure(call, requests: list, clients: int, seconds: float) -> dict:
    """Runs ``call(request)`` from ``clients`` threads for ``seconds``: ``{"latencies": ms,
    "seconds": elapsed}``."""
    latencies = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = []

    def client(index: int) -> None:
        for request in requests[:5]:  # warm-up, not counted
            call(request)
        start.wait()
        position = index
        while time.perf_counter() < stop_at[0]:
            begin = time.perf_counter()
            call(requests[position % len(requests)])
            latencies[index].append((time.perf_counter() - begin) * 1000)
            position += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at.append(float("inf"))
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {"latencies": np.concatenate([np.array(values) for values in latencies]),
            "seconds": elapsed}


def summarise(slices: list[dict]) -> dict:
    """p50 / p99 (ms), throughput and count over the slices of one setting."""
    flat = np.concatenate([part["latencies"] for part in slices])
    seconds = sum(part["seconds"] for part in slices)
    return {"p50": np.percentile(flat, 50), "p99": np.percentile(flat, 99),
            "throughput": len(flat) / seconds, "count": len(flat)}


def in_process_call(version_dir: str):
    """The recommend signature called directly, outputs fetched as numpy (as the server does);
    inputs a request leaves out take the SignatureDef's defaults, as on the server."""
    signature = tf.saved_model.load(version_dir).signatures["recommend"]
    defaults = {alias: tf.constant(tf.make_ndarray(proto)) for alias, proto in
                servable.read_signature_defs(version_dir)["recommend"].defaults.items()}

    def call(tensors):
        return {alias: value.numpy() for alias, value in
                signature(**{**defaults, **tensors}).items()}

    return call


def tensors_for(users: list[str], k: int) -> list[dict]:
    empty = tf.zeros([1, 0], tf.string)
    return [dict(user_id=tf.constant([user]), k=tf.constant([k]), category=tf.constant([""]),
                 exclude_item_ids=empty) for user in users]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", help="an export base with models.config (default: a "
                                             "toy SavedModel written to a temporary directory)")
    parser.add_argument("--model", help="the model to benchmark (with --export-dir)")
    parser.add_argument("--users", type=int, default=1000, help="toy catalogue users")
    parser.add_argument("--items", type=int, default=5000, help="toy catalogue items")
    parser.add_argument("--dim", type=int, default=32, help="toy embedding size")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=6.0, help="per setting and path")
    parser.add_argument("--rounds", type=int, default=3,
                        help="slices per setting, alternating in-process and gRPC")
    parser.add_argument("--server-arg", action="append", default=[], dest="server_args",
                        help="a flag for the server, e.g. --server-arg=--grpc_max_threads=4 "
                             "(repeatable)")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds and --seconds must be positive")

    with tempfile.TemporaryDirectory() as scratch:
        if args.export_dir:
            config_file = os.path.join(args.export_dir, "models.config")
            model = args.model or model_config.read_config(config_file)[0].name
        else:
            config_file, model = write_toy_export(scratch, args.users, args.items, args.dim)
        version_dir = latest_version_dir(config_file, model)
        users = user_ids_of(version_dir, 256)
        print(f"model {model} ({version_dir}); recommend k={args.k}, one user per request, "
              f"{args.seconds:g} s per setting and path in {args.rounds} alternating rounds, "
              f"{os.cpu_count()} cores" + (f"; server {' '.join(args.server_args)}"
                                          if args.server_args else ""))

        server = ServerProcess(config_file, tuple(args.server_args))
        try:
            server.wait_serving(model)
            rows = run_all(args, server.port, model, version_dir, users)
        finally:
            server.stop()
    print_table(rows)


def run_all(args, port: int, model: str, version_dir: str, users: list[str]) -> dict:
    requests = [predict_request(model, recommend_inputs([user], args.k), "recommend")
                for user in users]
    direct, tensors = in_process_call(version_dir), tensors_for(users, args.k)
    rows = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        paths = {"in-process": (direct, tensors),
                 "gRPC": (lambda r: stub.Predict(r, timeout=30), requests),
                 FLOOR: (lambda r: health.Check(r, timeout=30),
                         [health_pb2.HealthCheckRequest(service=model)])}
        for clients in CLIENTS:
            slices = {path: [] for path in paths if path != FLOOR or clients == 1}
            for round_index in range(args.rounds):
                order = list(slices) if round_index % 2 == 0 else list(slices)[::-1]
                for path in order:
                    call, inputs = paths[path]
                    slices[path].append(measure(call, inputs, clients,
                                                args.seconds / args.rounds))
            for path, parts in slices.items():
                rows[path, clients] = summarise(parts)
    return rows


def print_table(rows: dict) -> None:
    print(f"\n  {'path':<12} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
          f"{'requests':>9}")
    for (path, clients), row in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0])):
        print(f"  {path:<12} {clients:>7} {row['p50']:>8.2f} {row['p99']:>8.2f} "
              f"{row['throughput']:>8.0f} {row['count']:>9}")
    print("\n  gRPC / in-process (same run)")
    for clients in CLIENTS:
        grpc_row, local = rows["gRPC", clients], rows["in-process", clients]
        print(f"  {clients:>2} clients: p50 x{grpc_row['p50'] / local['p50']:.2f} "
              f"(+{grpc_row['p50'] - local['p50']:.2f} ms), "
              f"p99 x{grpc_row['p99'] / local['p99']:.2f} "
              f"(+{grpc_row['p99'] - local['p99']:.2f} ms), "
              f"throughput x{grpc_row['throughput'] / local['throughput']:.2f}")
    floor = rows[FLOOR, 1]
    print(f"  {FLOOR} (no model work), 1 client: p50 {floor['p50']:.2f} ms, "
          f"p99 {floor['p99']:.2f} ms")


if __name__ == "__main__":
    main()
