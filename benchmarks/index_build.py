"""Benchmark: how long ``PartitionedTopK.index`` takes to build, as now against as before.

    .venv/bin/python benchmarks/index_build.py [--shapes 1000000x64 100000x128]
        [--catalogue clustered random] [--repeats 1]

Builds each catalogue of ``benchmarks/topk_catalogue.py`` twice per repeat, alternating: as now
(``new``: the k-means' nearest-centroid assignments in TensorFlow, in 1,024-row blocks) and as
before (``old``: in NumPy, in 32,768-row chunks). Both are exact and draw the same random
numbers, so they build the same partitions up to float rounding. Prints the build seconds of
each, their ratio, and recall@10 at the default ``n_probe`` (and the scanned share) over 1,024
queries against the exact top-10. On a shared machine only the ratios measured in the same run are comparable.
"""

import argparse
import statistics
import sys
import time

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
from topk_catalogue import K, make_catalogue, numpy_top_k

from tfrec_fashion.layers import partitioning
from tfrec_fashion.layers.partitioned_top_k import PartitionedTopK
from tfrec_fashion_export.ann_index import recall_at_k

NEW = {"TF_FROM_SCORES": partitioning.TF_FROM_SCORES}
OLD = {"TF_FROM_SCORES": sys.maxsize}  # the build before issue 23: every assignment in NumPy


def build(items, new: bool):
    """(seconds, index) of one build, as now (``new``) or as before."""
    for name, value in (NEW if new else OLD).items():
        setattr(partitioning, name, value)
    try:
        begin = time.perf_counter()
        index = PartitionedTopK(k=K).index(items)
        return time.perf_counter() - begin, index
    finally:
        for name, value in NEW.items():
            setattr(partitioning, name, value)


def recall(index, queries, exact):
    found = np.concatenate([index(queries[start:start + 256])[1].numpy()
                            for start in range(0, len(queries), 256)])
    return recall_at_k(found, exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["1000000x64", "100000x128"])
    parser.add_argument("--catalogue", nargs="+", default=["clustered", "random"],
                        choices=["clustered", "random"])
    parser.add_argument("--repeats", type=int, default=1, help="builds of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("$ " + " ".join([sys.executable.split("/")[-1]] + sys.argv))
    rng = np.random.default_rng(args.seed)
    print(f"{'catalogue':<24}{'build':>8}{'seconds':>10}{'partitions':>12}{'probe':>7}"
          f"{'scanned':>9}{'recall@10':>11}")
    for shape in args.shapes:
        n_items, dim = (int(v) for v in shape.lower().split("x"))
        for kind in args.catalogue:
            items, queries, _ = make_catalogue(kind, n_items, dim, 4 * 256, rng)
            exact = np.concatenate([numpy_top_k(items)(queries[start:start + 256])
                                    for start in range(0, len(queries), 256)])
            seconds = {True: [], False: []}
            for repeat in range(args.repeats):
                # Alternate which goes first, so neither always meets a warmer machine.
                for new in ((True, False) if repeat % 2 == 0 else (False, True)):
                    took, index = build(items, new)
                    seconds[new].append(took)
                    if repeat == 0:
                        print(f"{kind + ' ' + shape:<24}{'new' if new else 'old':>8}"
                              f"{took:>10.1f}{index.built_n_partitions:>12,}"
                              f"{index.built_n_probe:>7}{index.scanned_share:>9.1%}"
                              f"{recall(index, queries, exact):>11.3f}", flush=True)
            ratio = statistics.median(seconds[False]) / statistics.median(seconds[True])
            print(f"{kind + ' ' + shape:<24}  old / new build time: {ratio:.1f}x "
                  f"(medians of {args.repeats}; new "
                  f"{', '.join(f'{s:.1f}' for s in seconds[True])} s)", flush=True)


if __name__ == "__main__":
    main()
