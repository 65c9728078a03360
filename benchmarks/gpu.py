"""GPU benchmark: DVBPR's training step at the paper's CNN-F preset (224x224, K = 50, batch 128
triplets per device), images/s and step time, and its MirroredStrategy scaling over the GPUs
present, each count measured in the same run as the 1-device step it is compared with.

    .venv/bin/python benchmarks/gpu.py [--steps 50] [--warmup 10] [--devices 1,2,4] [--json]
    .venv/bin/python benchmarks/gpu.py --tiny    # 32 px small_cnn, 3 steps, on the CPU

On a machine with GPUs it runs as is: one ``MirroredStrategy`` per device count (default 1, 2,
4, ... and all of them), each training DVBPR (``models.dvbpr.DVBPR`` with
``CNNF.from_preset("cnn_f", output_dim=50)``, lambda_theta = 1, Adam, float32) on synthetic
triplets over a synthetic item image table kept on every device, as in training. Each triplet
puts two images through Phi (Siamese), so images/s = 2 x triplets/s. The batch is 128 triplets
per device (the paper's batch on one), so the global batch grows with the devices (weak
scaling) and the ideal ratio at N devices is N.

What it compares against, printed with the table:

- 1 device in the same run: the scaling ratio images/s(N) / images/s(1) and its efficiency
  ratio / N;
- the device's spec-sheet peak: the step's model FLOPs (Phi's forward FLOPs counted from its
  layers, times 3 for forward and backward) per second, as a share of the dense TF32 tensor-core
  peak, TensorFlow's default arithmetic for float32 convolutions and matmuls on Ampere and later
  GPUs (A100 156, H100 PCIe 378, H100 SXM and H200 495 TFLOP/s);
- the DVBPR paper (Kang et al. 2017) reports no training throughput: only batch 128, K = 50 and
  lambda_theta = 1, which this step uses.

``--tiny`` (the default-suite test runs it, so the script cannot rot) takes the ``small_cnn``
preset at 32 px, 64 items, a batch of 8 and 3 steps, and with no GPU splits the CPU into two
logical devices, so the 1- and 2-device MirroredStrategy path runs too; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfrec_fashion  # noqa: E402,F401  (Keras 2 before the models load)
from tfrec_fashion.layers.cnn_f import CNNF  # noqa: E402
from tfrec_fashion.models.dvbpr import DVBPR  # noqa: E402

# Dense TF32 tensor-core peaks from NVIDIA's data sheets (TFLOP/s, without sparsity), by a
# substring of the device name TensorFlow reports; the first match wins.
PEAK_TF32_TFLOPS = (("H100 PCIe", 378.0), ("H100", 495.0), ("H200", 495.0), ("A100", 156.0))
PAPER_K, PAPER_BATCH, PAPER_LAMBDA_THETA = 50, 128, 1.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="small_cnn at 32 px, a few steps: runs on a CPU (the suite's test)")
    parser.add_argument("--steps", type=int, help="timed steps (default 50; tiny 3)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 10; tiny 1)")
    parser.add_argument("--batch-size", type=int,
                        help=f"triplets per device (default {PAPER_BATCH}, the paper's; tiny 8)")
    parser.add_argument("--items", type=int, help="item images in the table (default 512)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--devices", help="device counts, e.g. 1,2,4 (default 1, 2, 4, ... all)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    defaults = ({"steps": 3, "warmup": 1, "batch_size": 8, "items": 64} if args.tiny else
                {"steps": 50, "warmup": 10, "batch_size": PAPER_BATCH, "items": 512})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def benchmark_devices(tiny: bool) -> list[str]:
    """The GPUs, else the CPU (split in two logical devices under ``--tiny``)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and tiny:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    kind = "GPU" if gpus else "CPU"
    return [device.name for device in tf.config.list_logical_devices(kind)]


def device_counts(requested: str | None, available: int) -> list[int]:
    """1, 2, 4, ... up to ``available`` and ``available`` itself, or the requested counts."""
    if requested:
        counts = sorted({int(text) for text in requested.split(",")})
        if counts[0] < 1 or counts[-1] > available:
            raise SystemExit(f"--devices must lie in 1..{available}. Received: {requested}")
        return counts
    counts, count = [], 1
    while count < available:
        counts.append(count)
        count *= 2
    return counts + [available]


def forward_flops(phi: tf.keras.Model) -> int:
    """Multiply-adds x 2 of one image through Phi's convolutions and dense layers."""
    flops = 0
    for layer in phi.layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            _, height, width, filters = layer.output_shape
            kernel_h, kernel_w, channels, _ = layer.kernel.shape
            flops += 2 * height * width * filters * kernel_h * kernel_w * channels
        elif isinstance(layer, tf.keras.layers.Dense):
            flops += 2 * int(np.prod(layer.kernel.shape))
    return flops


class StepTimes(tf.keras.callbacks.Callback):
    """Wall time at the end of each training batch (Keras hands callbacks NumPy logs, so each
    end waits for its step)."""

    def __init__(self):
        super().__init__()
        self.ends: list[float] = []

    def on_train_begin(self, logs=None):
        self.ends = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def triplets(n_users: int, n_items: int, global_batch: int, seed: int) -> tf.data.Dataset:
    """An endless dataset of random {"user", "pos_item", "neg_item"} int32 batches."""
    rng = np.random.default_rng(seed)
    size = 64 * global_batch  # cycled: the draw does not matter, its cost must not count
    columns = {"user": rng.integers(0, n_users, size), "pos_item": rng.integers(0, n_items, size),
               "neg_item": rng.integers(0, n_items, size)}
    data = tf.data.Dataset.from_tensor_slices({k: v.astype(np.int32) for k, v in columns.items()})
    return data.repeat().batch(global_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def measure(devices: list[str], args: argparse.Namespace, images: np.ndarray,
            preset: str) -> dict:
    """Trains DVBPR for warmup + steps batches under MirroredStrategy(devices); the timings."""
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        phi = CNNF.from_preset(preset, output_dim=PAPER_K)
        model = DVBPR(args.users, args.items, phi, lambda_theta=PAPER_LAMBDA_THETA,
                      item_images=images)
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
    global_batch = args.batch_size * len(devices)
    timer = StepTimes()
    model.fit(triplets(args.users, args.items, global_batch, seed=len(devices)), epochs=1,
              steps_per_epoch=args.warmup + args.steps, callbacks=[timer], verbose=0)
    steps = np.diff(timer.ends)[args.warmup:]
    step_seconds = statistics.median(steps)
    return {"devices": len(devices), "global_batch": global_batch,
            "step_ms": 1000 * step_seconds, "step_ms_spread": [1000 * min(steps),
                                                              1000 * max(steps)],
            "images_per_second": 2 * global_batch / step_seconds,
            "parameters_in_phi": int(phi.count_params()),
            "forward_gflops_per_image": forward_flops(phi) / 1e9}


def device_description(devices: list[str]) -> tuple[str, float | None]:
    """The first device's name (GPU: as TensorFlow reports it) and its dense TF32 peak."""
    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        return "CPU", None
    name = tf.config.experimental.get_device_details(physical[0]).get("device_name", "GPU")
    peak = next((value for key, value in PEAK_TF32_TFLOPS if key in name), None)
    return name, peak


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    devices = benchmark_devices(args.tiny)
    preset = "small_cnn" if args.tiny else "cnn_f"
    name, peak = device_description(devices)
    if name == "CPU" and not args.tiny:
        print("no GPU found: the 224 px step on a CPU takes seconds; --tiny checks the script")
    shape = CNNF.PRESETS[preset]["image_shape"]
    images = np.random.default_rng(0).random((args.items, *shape), dtype=np.float32)
    results = [measure(devices[:count], args, images, preset)
               for count in device_counts(args.devices, len(devices))]
    base = next((r for r in results if r["devices"] == 1), None)
    for result in results:
        model_flops = 3 * result["forward_gflops_per_image"] * 1e9 * result["images_per_second"]
        result["model_tflops"] = model_flops / 1e12
        result["share_of_peak"] = model_flops / (peak * 1e12) if peak else None
        result["vs_1_device"] = (result["images_per_second"] / base["images_per_second"]
                                 if base else None)
        result["efficiency"] = (result["vs_1_device"] / result["devices"]
                                if base else None)
    if args.json:
        print(json.dumps({"device": name, "peak_tf32_tflops": peak, "preset": preset,
                          "batch_per_device": args.batch_size, "results": results}, indent=1))
    else:
        print_table(results, args, name, peak, preset)
    return results


def print_table(results: list[dict], args, name: str, peak: float | None, preset: str) -> None:
    first = results[0]
    shape = "x".join(str(side) for side in CNNF.PRESETS[preset]["image_shape"])
    print(f"DVBPR training step, CNN-F preset {preset} ({shape}, K = {PAPER_K}, "
          f"{first['parameters_in_phi']:,} parameters in Phi), {args.batch_size} triplets "
          f"({2 * args.batch_size} images) per device, Adam, float32; device: {name}")
    print(f"Phi forward: {first['forward_gflops_per_image']:.3f} GFLOP per image; a step "
          f"counts 3x (forward and backward); median of {args.steps} steps after {args.warmup}")
    print(f"{'devices':>7} {'global batch':>12} {'step ms':>9} {'(min-max)':>17} "
          f"{'images/s':>10} {'vs 1 device':>11} {'efficiency':>10} {'TFLOP/s':>8} "
          f"{'of peak':>8}")
    for r in results:
        spread = f"{r['step_ms_spread'][0]:.1f}-{r['step_ms_spread'][1]:.1f}"
        ratio = f"{r['vs_1_device']:.2f}x" if r["vs_1_device"] else "-"
        efficiency = f"{100 * r['efficiency']:.0f}%" if r["efficiency"] else "-"
        share = f"{100 * r['share_of_peak']:.1f}%" if r["share_of_peak"] else "-"
        print(f"{r['devices']:>7} {r['global_batch']:>12} {r['step_ms']:>9.1f} {spread:>17} "
              f"{r['images_per_second']:>10,.0f} {ratio:>11} {efficiency:>10} "
              f"{r['model_tflops']:>8.2f} {share:>8}")
    peak_text = (f"{name}'s dense TF32 peak, {peak:.0f} TFLOP/s (spec sheet)" if peak else
                 "no known peak for this device (A100, H100, H200 are listed)")
    print(f"Compared against: 1 device in this run (ideal: N x at N devices); {peak_text}; the "
          "DVBPR paper reports no throughput, only batch 128, K = 50, lambda_theta = 1 (used).")
    if args.tiny:
        print("--tiny: small_cnn at 32 px on whatever device is here; the numbers mean nothing.")


if __name__ == "__main__":
    main()
