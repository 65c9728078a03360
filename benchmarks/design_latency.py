"""Benchmark: one ``design`` request (the generation head: preference maximisation in the graph,
paper 003 III-D) against the ascent's number of Adam steps and of restarts m, each setting its
own export, timed in-graph (the signature called in this process) and served (our gRPC server
in its own process, TF Serving's official stub), as ratios to the smallest setting measured in
the same run.

    .venv/bin/python benchmarks/design_latency.py [--steps 10 25 50 100] [--restarts 8 16 32 64]
    .venv/bin/python benchmarks/design_latency.py --run-dir runs/design_gan_fmnist
    .venv/bin/python benchmarks/design_latency.py --tiny      # seconds: the test suite runs it

Without ``--run-dir`` the networks are the Fashion-MNIST world's shapes with untrained weights
(a ``ConditionalLSGAN`` at 32 px, z of 100, widths 32 / 32, and DVBPR's ``small_cnn`` Phi with
K = 32; the cost of an ascent does not depend on the weights); with it, that design_gan run's
serving parts. Two sweeps: the steps at ``--base-restarts`` restarts, the restarts at
``--base-steps`` steps. Each request designs ``--n`` images for one known customer (the
answer, [1, n, H, W, 3], is small next to the ascent); the median of ``--repeats`` requests is
reported after one untimed request, the settings timed in turn within each round (a shared
machine's changing load falls on all of them alike). The ascent's work is linear in both
(each step runs G, D and Phi forward and back on m images), so the ratios show how far a
setting is from that line: fixed costs (sampling, the answer, gRPC) weigh at the small
settings, and small batches leave cores idle.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tfrec_fashion  # noqa: E402,F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: E402

from tfrec_fashion.training.serving_parts import (ConditionalGan, DesignSettings,  # noqa: E402
                                                  GenerationParts, ItemEmbedder, load_parts)
from tfrec_fashion_export.writer import export_parts  # noqa: E402
from tfrec_fashion_serving.client import predict_request  # noqa: E402
from tfrec_fashion_serving.contract import DESIGN, design_inputs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_latency import ServerProcess  # noqa: E402

CATEGORIES = ["bag", "bottom", "dress", "shoes", "top"]  # the Fashion-MNIST world's slots


def untrained_parts(image_size: int, latent_dim: int, filters: int, phi_dim: int,
                    tiny: bool) -> GenerationParts:
    """The design networks at the given shapes, untrained (latency does not depend on the
    weights): a ``ConditionalLSGAN`` and DVBPR's ``small_cnn`` Phi (a smaller CNN with
    ``tiny``), 100 customers with random theta_u."""
    from tfrec_fashion.layers.cnn_f import CNNF, small_cnn
    from tfrec_fashion.models.lsgan import ConditionalLSGAN

    gan = ConditionalLSGAN(len(CATEGORIES), image_size, latent_dim, filters, filters)
    shape = (image_size, image_size, 3)
    backbone = CNNF(output_dim=phi_dim, image_shape=shape, conv_filters=(4, 4, 4, 4, 4),
                    fc_units=(8, 8)) if tiny else small_cnn(phi_dim, image_shape=shape)
    users = np.random.default_rng(0).normal(size=(100, phi_dim)).astype(np.float32)
    return GenerationParts(
        user_ids=np.array([f"u{row}" for row in range(len(users))]), user_vectors=users,
        categories=CATEGORIES,
        gan=ConditionalGan(latent_dim, shape,
                           lambda z, c: gan.generator([z, c], training=False),
                           lambda x, c: gan.discriminator([x, c], training=False),
                           gan.variables),
        phi=ItemEmbedder("image", tf.TensorSpec([None, *shape], tf.float32, "image"),
                         lambda images: backbone(images, training=False), backbone.variables),
        info={"model": "untrained_design_gan", "dataset": "shapes only"})


def settings_to_measure(args) -> list[tuple[int, int]]:
    """(steps, restarts) of both sweeps, in order, each once."""
    points = [(steps, args.base_restarts) for steps in args.steps]
    points += [(args.base_steps, restarts) for restarts in args.restarts]
    return list(dict.fromkeys(points))


def model_name(steps: int, restarts: int) -> str:
    return f"design_s{steps}_m{restarts}"


def interleaved_medians(calls: list, repeats: int) -> list[float]:
    """Median milliseconds of each call over ``repeats`` rounds, after one untimed call each.
    Each round times every call once, so a load that changes during the run (a shared
    machine) falls on every setting alike and the ratios stay fair."""
    for call in calls:
        call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for index, call in enumerate(calls):
            begin = time.perf_counter()
            call()
            times[index].append((time.perf_counter() - begin) * 1000)
    return [float(np.median(values)) for values in times]


def measure(args, parts: GenerationParts, base: Path) -> list[dict]:
    """Exports every setting, then times each in-graph and served (one server for all, in
    its own process) in the same rounds."""
    inputs = design_inputs([str(parts.user_ids[0])], parts.categories[0], args.n, 0, None)
    tensors = {name: tf.constant(value) for name, value in inputs.items()}
    tensors["eta"] = tf.constant([1.0])  # a loaded signature takes every input
    rows, calls = [], []
    for steps, restarts in settings_to_measure(args):
        settings = dataclasses.replace(parts.settings, steps=steps, restarts=restarts)
        version = export_parts(dataclasses.replace(parts, settings=settings), base,
                               model_name(steps, restarts))
        signature = tf.saved_model.load(str(version)).signatures[DESIGN.name]
        calls.append(lambda signature=signature: signature(**tensors)["images"].numpy())
        rows.append({"steps": steps, "restarts": restarts})
        print(f"  exported steps {steps:>4} restarts {restarts:>4}", file=sys.stderr,
              flush=True)
    if not args.served:
        for row, median in zip(rows, interleaved_medians(calls, args.repeats)):
            row["in_graph_ms"] = median
        return rows
    server = ServerProcess(str(base / "models.config"))
    try:
        for row in rows:  # every model loaded (its warm-up replayed) before any timing
            server.wait_serving(model_name(row["steps"], row["restarts"]), timeout=600)
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            requests = [predict_request(model_name(row["steps"], row["restarts"]), inputs,
                                        DESIGN.name) for row in rows]
            calls += [lambda request=request: stub.Predict(request, timeout=600)
                      for request in requests]  # in the same rounds as the in-graph calls
            medians = interleaved_medians(calls, args.repeats)
    finally:
        server.stop()
    for row, in_graph, served in zip(rows, medians[:len(rows)], medians[len(rows):]):
        row["in_graph_ms"], row["served_ms"] = in_graph, served
    return rows


def with_ratios(rows: list[dict], args) -> dict:
    """Each sweep's rows with their ratios to the sweep's smallest setting (same run)."""
    sweeps = {}
    for name, key, fixed in (("steps", "steps", ("restarts", args.base_restarts)),
                             ("restarts", "restarts", ("steps", args.base_steps))):
        chosen = sorted((row for row in rows if row[fixed[0]] == fixed[1]
                         and row[key] in getattr(args, name)), key=lambda row: row[key])
        smallest = chosen[0]
        sweeps[name] = [{**row, "work_ratio": row[key] / smallest[key],
                         **{f"{timing}_ratio": row[timing] / smallest[timing]
                            for timing in ("in_graph_ms", "served_ms") if timing in row}}
                        for row in chosen]
    return sweeps


def print_table(sweeps: dict, args, device: str) -> None:
    print(f"design latency per request (1 customer, n = {args.n}), median of {args.repeats}, "
          f"{device}, {os.cpu_count()} CPU cores")
    served = args.served
    for name, fixed in (("steps", f"restarts m = {args.base_restarts}"),
                        ("restarts", f"steps = {args.base_steps}")):
        print(f"\nagainst the {name} ({fixed}); ratios to the smallest {name} in this run")
        print(f"{name:>9} {'work':>6} {'in-graph ms':>12} {'ratio':>7}"
              + (f" {'served ms':>11} {'ratio':>7} {'served/in-graph':>16}" if served else ""))
        for row in sweeps[name]:
            line = (f"{row[name]:>9} {row['work_ratio']:>5.1f}x {row['in_graph_ms']:>12.1f} "
                    f"{row['in_graph_ms_ratio']:>6.2f}x")
            if served:
                line += (f" {row['served_ms']:>11.1f} {row['served_ms_ratio']:>6.2f}x "
                         f"{row['served_ms'] / row['in_graph_ms']:>15.2f}x")
            print(line)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a design_gan run (its serving parts); default: "
                        "untrained networks of the Fashion-MNIST world's shapes")
    parser.add_argument("--steps", type=int, nargs="+", help="default 10 25 50 100")
    parser.add_argument("--restarts", type=int, nargs="+", help="default 8 16 32 64")
    parser.add_argument("--base-steps", type=int, help="steps of the restarts sweep "
                        "(default 50)")
    parser.add_argument("--base-restarts", type=int, help="restarts of the steps sweep "
                        "(default 64, the paper's m)")
    parser.add_argument("--n", type=int, default=8, help="designs per request (default 8)")
    parser.add_argument("--repeats", type=int, help="timed requests per setting (default 5)")
    parser.add_argument("--no-served", dest="served", action="store_false",
                        help="in-graph only (no server)")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and settings, "
                        "seconds on a CPU (the test suite's run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = {"steps": [1, 2] if tiny else [10, 25, 50, 100],
                "restarts": [8, 16] if tiny else [8, 16, 32, 64],
                "base_steps": 2 if tiny else 50, "base_restarts": 8 if tiny else 64,
                "repeats": 3 if tiny else 5}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.n > min(args.restarts + [args.base_restarts]):
        parser.error(f"--n ({args.n}) must be at most every restarts measured")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.run_dir:
        parts = load_parts(args.run_dir)
        if not isinstance(parts, GenerationParts):
            raise SystemExit(f"{args.run_dir} serves the {parts.HEAD} head, not generation")
    elif args.tiny:
        parts = untrained_parts(8, 8, 4, 4, tiny=True)
    else:
        parts = untrained_parts(32, 100, 32, 32, tiny=False)
    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
              if gpus else "CPU")
    with tempfile.TemporaryDirectory() as scratch:
        rows = measure(args, parts, Path(scratch))
    sweeps = with_ratios(rows, args)
    report = {"device": device, "n": args.n, "repeats": args.repeats,
              "image_shape": parts.image_shape, "latent_dim": parts.gan.latent_dim,
              "base_steps": args.base_steps, "base_restarts": args.base_restarts,
              "sweeps": sweeps}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(sweeps, args, device)
    return report


if __name__ == "__main__":
    main()
