"""Benchmark: exporting a VBPR run on EfficientNet-Lite0 features, from its serving parts against
the old way (rebuild the dataset, re-run the recipe's ``prepare``, which runs EfficientNet over
the whole catalogue, then export). Both measured in the same run on the same trained run
directory (``configs/vbpr_efficientnet.yaml``'s model on the planted world, trained for one
short epoch: the export does not depend on how well it learned).

    .venv/bin/python benchmarks/export_run.py [--n-items 1500] [--image-size 64]

The old way (``load_run`` then export) is what ``export_run`` did before runs wrote their
serving parts, and still does once for a run trained before that. Prints both times, the ratio and how much of the old way was the dataset and the CNN.
"""

import argparse
import tempfile
import time
from pathlib import Path

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)

# isort: split
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export.runs import export_run
from tfrec_fashion_export.writer import export_parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-items", type=int, default=1500)
    parser.add_argument("--n-users", type=int, default=800)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config = from_dict(RunConfig, {
            "model": {"name": "vbpr", "latent_dim": 10, "visual_dim": 10,
                      "feature_source": "efficientnet", "image_size": args.image_size},
            "data": {"name": "synthetic", "seed": 0, "n_users": args.n_users,
                     "n_items": args.n_items, "image_size": args.image_size},
            "train": {"epochs": 1, "batch_size": 256, "steps_per_epoch": 5, "verbose": 0},
            "seed": 0, "run_dir": str(root / "run")})
        started = time.perf_counter()
        train(config)
        print(f"trained (features extracted once): {time.perf_counter() - started:.1f} s")
        timings = {}
        for way in ("rebuild (before)", "serving parts (now)") * 2:
            started = time.perf_counter()
            if way.startswith("rebuild"):  # what export_run did before this change
                _, recipe, model = load_run(root / "run")
                export_parts(recipe.serving_parts(model), root / "base", "vbpr")
            else:
                export_run(root / "run", root / "base")
            timings.setdefault(way, []).append(time.perf_counter() - started)
    best = {way: min(times) for way, times in timings.items()}
    print(f"\nexport of VBPR on EfficientNet-Lite0 features, {args.n_items:,} items at "
          f"{args.image_size}px (best of 2):")
    for way, seconds in best.items():
        print(f"  {way:22s} {seconds:7.1f} s")
    print(f"  ratio before / now: {best['rebuild (before)'] / best['serving parts (now)']:.1f}x")


if __name__ == "__main__":
    main()
