"""The production path as an ML engineer at a retailer runs it, from the command line: train a
run, `tfrec-fashion export` it (with the approximate index), `tfrec-fashion serve` the export
base in its own process, `tfrec-fashion query` it, and drop a new version in while it serves."""

import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest

from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_serving import client

TINY = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120,
        "mean_interactions_per_user": 12.0, "image_size": 32}
TRAIN = {"epochs": 2, "batch_size": 64, "steps_per_epoch": 8, "learning_rate": 0.02,
         "verbose": 0}
CLI = [sys.executable, "-m", "tfrec_fashion.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    model = {"name": "vbpr", "latent_dim": 4, "visual_dim": 4}
    config = from_dict(RunConfig, {"model": model, "data": TINY, "train": TRAIN, "seed": 0,
                                   "run_dir": str(root / "run")})
    return train(config)


@pytest.fixture
def server(run, tmp_path):
    """`tfrec-fashion export` then `tfrec-fashion serve` in a subprocess; yields (target, base)."""
    pytest.importorskip("scann", reason="the approximate index needs tfrec-fashion[ann]")
    base = tmp_path / "exports"
    exported = subprocess.run([*CLI, "export", str(run.run_dir), "--base", str(base), "--name",
                               "shop", "--index", "scann"], capture_output=True, text=True,
                              timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    port = _free_port()
    process = subprocess.Popen([*CLI, "serve", "--export_base", str(base), "--port", str(port),
                                "--file_system_poll_wait_seconds", "0.3"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if client.status(target, "shop", timeout=2)[0]["state"] == "AVAILABLE":
                    break
            except grpc.RpcError:
                pass
            assert process.poll() is None, process.stdout.read()[-3000:]
            assert time.time() < deadline, "the server did not load the export in 120 s"
            time.sleep(0.5)
        yield target, base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_cli_export_serve_query_and_a_new_version_while_serving(run, server, assert_close):
    target, base = server
    user = str(run.dataset.users.ids[0])
    queried = subprocess.run([*CLI, "query", "--server", target, "--model", "shop", "--user", user,
                              "--user", "someone-new", "--k", "5"], capture_output=True,
                             text=True, timeout=120)
    assert queried.returncode == 0, queried.stderr[-2000:]
    keras = run.model.score(np.array([0])).numpy()[0]
    keras[run.dataset.interactions.item[run.dataset.interactions.user == 0]] = -np.inf  # bought
    keras_top = run.dataset.items.ids[np.argsort(-keras, kind="stable")[:5]]
    lines = [line.split() for line in queried.stdout.splitlines() if line.startswith(user)]
    assert [line[2] for line in lines] == list(keras_top)
    assert "cold-start" in queried.stdout

    signatures = client.metadata(target, "shop")
    assert {"serving_default", "recommend", "recommend_approximate", "score", "user_query",
            "embed_item"} <= set(signatures)
    k = signatures["recommend"].inputs["k"]
    assert (k.dtype, [d.size for d in k.tensor_shape.dim]) == (3, [-1])  # DT_INT32 [B]
    assert "k" in signatures["recommend"].defaults
    features = signatures["embed_item"].inputs["features"]
    assert [d.size for d in features.tensor_shape.dim] == [-1, run.recipe.features.shape[1]]

    bad = {"k": ({"model": "shop", "user_ids": [user], "k": 0},
                 grpc.StatusCode.INVALID_ARGUMENT, "k must be in [1, 120]"),
           "category": ({"model": "shop", "user_ids": [user], "category": "hats"},
                        grpc.StatusCode.INVALID_ARGUMENT, "unknown category"),
           "model": ({"model": "nope", "user_ids": [user]}, grpc.StatusCode.NOT_FOUND, "nope")}
    for case, (kwargs, code, message) in bad.items():
        with pytest.raises(grpc.RpcError) as error:
            client.recommend(target, **kwargs)
        assert error.value.code() == code and message in error.value.details(), case

    exact = client.recommend(target, "shop", [user, "someone-new"], k=10)
    approximate = client.recommend(target, "shop", [user, "someone-new"], k=10, approximate=True)
    np.testing.assert_array_equal(approximate["item_ids"], exact["item_ids"])  # 120 items: exact
    # ScaNN's dot products against the graph's matmul, 10 float32 terms (VBPR: beta_i, gamma_i,
    # theta_i, the visual bias) in two orders: 2 (n - 1) = 18 ulps of their terms.
    assert_close(approximate["scores"], exact["scores"], ulps=18)
    kept = client.recommend(target, "shop", [user], k=10, approximate=True, exclude_seen=False)
    assert not np.array_equal(kept["item_ids"][0], approximate["item_ids"][0])

    # A new version exported while a client keeps asking: picked up, nothing fails.
    exporter = subprocess.Popen([*CLI, "export", str(run.run_dir), "--base", str(base),
                                 "--name", "shop"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    served_versions, failures = set(), 0
    deadline = time.time() + 180
    while time.time() < deadline and 2 not in served_versions:
        try:
            served_versions.add(client.recommend(target, "shop", [user], k=3)["version"])
        except grpc.RpcError as error:  # pragma: no cover - the assertion below reports it
            failures += 1
            print(error)
    assert exporter.wait(timeout=120) == 0, exporter.stdout.read()[-2000:]
    assert failures == 0 and served_versions == {1, 2}
    assert sorted(path.name for path in (base / "shop").iterdir()) == ["1", "2"]
