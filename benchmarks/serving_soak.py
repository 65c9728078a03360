"""Soak benchmark: many clients for minutes against a server subprocess while new versions are
written and old ones retired, reporting errors by code, latency and the server's memory.

    .venv/bin/python benchmarks/serving_soak.py [--clients 32] [--minutes 10] \\
        [--swap-seconds 60] [--items 5000] [--json]

It writes a contract-following toy export (``tfrec_fashion_serving.testing``, a catalogue of
``--items`` items and ``--users`` users) into a temporary export base, serves it with
``python -m tfrec_fashion_serving.server`` (the model's version policy is TF Serving's default,
the latest version only) and runs ``--clients`` client threads, each sending a mix of
``recommend`` (one user, k=10, a random category half the time), ``score`` (one user, 20 items)
and ``user_query`` (one user) over the official stubs, plus 1 in 50 requests asking for k
beyond the catalogue, which must be INVALID_ARGUMENT (the expected errors). Every
``--swap-seconds`` a new version is written atomically (a ``.tmp-*`` copy, then a rename, as
``testing.write_version``), alternating two catalogues; the server loads it and unloads the old
one by policy, and versions older than the previous one are deleted from disk.

Reports requests, errors by code (expected / unexpected), p50 / p99 latency per signature, the
versions that answered and the server's RSS (``/proc/PID/status`` VmRSS) at start and end and
its peak (VmHWM), as a table, or as JSON with ``--json``.

:class:`ServerProcess` (a server subprocess with its RSS) is shared with the fault tests
(``tests/serving/test_fuzz.py``, ``test_soak.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: E402
from tfrec_fashion_serving import model_config, testing  # noqa: E402
from tfrec_fashion_serving.client import predict_request, recommend_inputs  # noqa: E402

MODEL = "toy"
MiB = 1024 * 1024
EXPECTED_CODES = {"INVALID_ARGUMENT"}  # the deliberate k-out-of-range requests


# === The server subprocess ===

def memory_of(pid: int) -> dict[str, int]:
    """``{"rss": VmRSS, "peak": VmHWM}`` of a process, in bytes (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) * 1024,
            "peak": int(fields["VmHWM"].split()[0]) * 1024}


class ServerProcess:
    """``python -m tfrec_fashion_serving.server --port=0`` with extra flags, until stopped.

    Args:
        config_file: the ``models.config`` to serve.
        flags: more command-line flags, e.g. ``["--max_batch_size=64"]``.
        timeout: seconds to wait for the port to be bound.
        launcher: the Python arguments that run the server's ``main`` (e.g. ``["-c", code]``
            to try a patched server).
    """

    def __init__(self, config_file: str, flags: list[str] = (), timeout: float = 180.0,
                 launcher: list[str] = ("-m", "tfrec_fashion_serving.server")):
        self.process = subprocess.Popen(
            [sys.executable, *launcher, f"--model_config_file={config_file}", "--port=0",
             *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self.pid = self.process.pid
        self.output: list[str] = []
        self.port = self._read_port(timeout)
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_port(self, timeout: float) -> int:
        timer = threading.Timer(timeout, self.process.kill)
        timer.start()
        try:
            for line in self.process.stdout:
                self.output.append(line)
                match = re.search(r"serving gRPC on [^ ]+:(\d+)", line)
                if match:
                    return int(match.group(1))
        finally:
            timer.cancel()
        raise RuntimeError(f"the server exited with status {self.process.wait()}:\n"
                           + "".join(self.output[-40:]))

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory(self) -> dict[str, int]:
        return memory_of(self.pid)

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.target) as channel:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=10).status

    def wait_serving(self, model: str, timeout: float = 120.0) -> None:
        """Waits for the health service to say ``model`` is SERVING (works whether the port
        opens before or after the models load)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                if self.health(model) == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{model} not serving after {timeout} s:\n"
                           + "".join(self.output[-40:]))

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 30 s)."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# === The export base ===

class SoakExport:
    """A toy export base whose model gets a new version on each :meth:`swap`."""

    def __init__(self, directory: str, users: int, items: int, dim: int):
        self.model_dir = os.path.join(directory, MODEL)
        self.catalogues, self.saved = [], []
        for seed in (0, 1):
            catalogue = testing.ToyCatalogue.random(seed=seed, n_users=users, n_items=items,
                                                    dim=dim, n_categories=8)
            self.catalogues.append(catalogue)
            self.saved.append(testing.write_version(
                testing.ToyRecommender(catalogue), os.path.join(directory, "saved"), seed + 1))
        self.version = 1
        testing.write_version(self.saved[0], self.model_dir, self.version)
        self.config_file = testing.write_models_config(directory, {MODEL: None})

    def swap(self) -> int:
        """Writes the next version (the other catalogue) atomically; deletes versions older
        than the previous one (the server unloads them by its latest-version policy)."""
        self.version += 1
        testing.write_version(self.saved[(self.version - 1) % 2], self.model_dir, self.version)
        for version in model_config.discover_versions(self.model_dir):
            if version < self.version - 1:
                shutil.rmtree(os.path.join(self.model_dir, str(version)), ignore_errors=True)
        return self.version


# === Clients ===

def request_mix(catalogue: testing.ToyCatalogue, count: int, seed: int = 0) -> list:
    """``[(kind, PredictRequest)]``: recommend 60 %, score 20 %, user_query 18 %, and 2 %
    recommend with k beyond the catalogue (``bad_k``, expected INVALID_ARGUMENT)."""
    rng = np.random.default_rng(seed)
    users, items = catalogue.user_ids, catalogue.item_ids
    categories = catalogue.categories
    mix = []
    for _ in range(count):
        user = [str(rng.choice(users)) if rng.random() < 0.9 else f"new{rng.integers(1e6)}"]
        draw = rng.random()
        if draw < 0.6:
            category = str(rng.choice(categories)) if rng.random() < 0.5 else None
            mix.append(("recommend", predict_request(
                MODEL, recommend_inputs(user, 10, category), "recommend")))
        elif draw < 0.8:
            chosen = rng.choice(items, size=20, replace=False).astype(bytes).astype(object)
            mix.append(("score", predict_request(MODEL, {
                "user_id": np.array(user, dtype=bytes).astype(object),
                "item_ids": chosen[None, :]}, "score")))
        elif draw < 0.98:
            mix.append(("user_query", predict_request(
                MODEL, {"user_id": np.array(user, dtype=bytes).astype(object)}, "user_query")))
        else:
            mix.append(("bad_k", predict_request(
                MODEL, recommend_inputs(user, len(items) + 1), "recommend")))
    return mix


class Tally:
    """Latencies by kind, status codes by kind, versions that answered (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = collections.defaultdict(list)
        self.codes = collections.Counter()
        self.versions = collections.Counter()

    def add(self, kind: str, code: str, seconds: float, version: int | None) -> None:
        with self.lock:
            self.codes[kind, code] += 1
            if code == "OK":
                self.latencies[kind].append(seconds * 1000)
                self.versions[version] += 1


def run_clients(target: str, mix: list, clients: int, seconds: float, tally: Tally,
                timeout: float = 30.0) -> None:
    """``clients`` threads sending ``mix`` round robin for ``seconds`` over one channel each."""
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            position = index * 7919
            while time.monotonic() < stop_at:
                kind, request = mix[position % len(mix)]
                position += 1
                began = time.perf_counter()
                try:
                    response = stub.Predict(request, timeout=timeout)
                    code, version = "OK", response.model_spec.version.value
                except grpc.RpcError as error:
                    code, version = error.code().name, None
                tally.add(kind, code, time.perf_counter() - began, version)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def summarise(tally: Tally, memory_start: dict, memory_end: dict, args, versions_written: int,
              elapsed: float) -> dict:
    """The report: requests, errors by code, latencies, versions, memory."""
    errors = collections.Counter()
    unexpected = collections.Counter()
    for (kind, code), count in tally.codes.items():
        if code == "OK":
            continue
        errors[code] += count
        if not (kind == "bad_k" and code in EXPECTED_CODES):
            unexpected[f"{kind}:{code}"] += count
    bad_k_ok = tally.codes.get(("bad_k", "OK"), 0)
    if bad_k_ok:
        unexpected["bad_k:OK"] += bad_k_ok
    requests = sum(tally.codes.values())
    latency = {}
    for kind, values in sorted(tally.latencies.items()):
        latency[kind] = {"count": len(values), "p50_ms": float(np.percentile(values, 50)),
                         "p99_ms": float(np.percentile(values, 99))}
    every = np.concatenate([np.array(v) for v in tally.latencies.values()]) \
        if tally.latencies else np.zeros(1)
    return {
        "clients": args.clients, "minutes": args.minutes, "swap_seconds": args.swap_seconds,
        "items": args.items, "users": args.users, "cores": os.cpu_count(),
        "seconds": elapsed, "requests": requests, "requests_per_second": requests / elapsed,
        "errors_by_code": dict(errors), "unexpected_errors": dict(unexpected),
        "p50_ms": float(np.percentile(every, 50)), "p99_ms": float(np.percentile(every, 99)),
        "latency": latency, "versions_written": versions_written,
        "versions_answered": sorted(v for v in tally.versions if v),
        "rss_start_mb": memory_start["rss"] / MiB, "rss_end_mb": memory_end["rss"] / MiB,
        "rss_peak_mb": memory_end["peak"] / MiB,
    }


def print_table(report: dict) -> None:
    print(f"\nsoak: {report['clients']} clients, {report['seconds']:.0f} s, a new version every "
          f"{report['swap_seconds']:.0f} s ({report['versions_written']} written, "
          f"{len(report['versions_answered'])} answered), {report['items']} items, "
          f"{report['cores']} cores")
    print(f"\n  {'signature':<11} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, row in report["latency"].items():
        print(f"  {kind:<11} {row['count']:>9} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}")
    print(f"  {'all':<11} {report['requests']:>9} {report['p50_ms']:>8.2f} "
          f"{report['p99_ms']:>8.2f}   ({report['requests_per_second']:.0f} req/s)")
    print(f"\n  errors by code: {report['errors_by_code'] or 'none'}")
    print(f"  unexpected:     {report['unexpected_errors'] or 'none'}")
    print(f"  server RSS:     {report['rss_start_mb']:.0f} MB at start, "
          f"{report['rss_end_mb']:.0f} MB at end, peak {report['rss_peak_mb']:.0f} MB")


def soak(args) -> dict:
    """Runs the soak (flags as :func:`build_parser`); returns the report."""
    with tempfile.TemporaryDirectory() as scratch:
        export = SoakExport(scratch, args.users, args.items, args.dim)
        server = ServerProcess(export.config_file, ["--file_system_poll_wait_seconds=1",
                                                    f"--grpc_max_threads={args.threads}"])
        try:
            server.wait_serving(MODEL)
            mix = request_mix(export.catalogues[0], 2048)
            run_clients(server.target, mix[:64], min(args.clients, 4), 2.0, Tally())  # warm
            memory_start = server.memory()
            tally, seconds = Tally(), args.minutes * 60
            stop = threading.Event()

            def swapper() -> None:
                while not stop.wait(args.swap_seconds):
                    export.swap()

            swapping = threading.Thread(target=swapper, daemon=True)
            began = time.monotonic()
            swapping.start()
            run_clients(server.target, mix, args.clients, seconds, tally)
            elapsed = time.monotonic() - began
            stop.set()
            swapping.join()
            if not server.alive():
                raise RuntimeError("the server died:\n" + "".join(server.output[-40:]))
            memory_end = server.memory()
        finally:
            server.stop()
    return summarise(tally, memory_start, memory_end, args, export.version - 1, elapsed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="client threads")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument("--swap-seconds", type=float, default=60.0,
                        help="write a new version this often")
    parser.add_argument("--users", type=int, default=2000, help="toy catalogue users")
    parser.add_argument("--items", type=int, default=5000, help="toy catalogue items")
    parser.add_argument("--dim", type=int, default=32, help="toy embedding size")
    parser.add_argument("--threads", type=int, default=16, help="server --grpc_max_threads")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    report = soak(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return report


if __name__ == "__main__":
    main()
