"""Benchmark: top-10 retrieval over large catalogues (1,000,000 x 64 and 100,000 x 128 by
default). The baseline is TFRS BruteForce, the exact index a stock SavedModel serves; beside it,
measured in the same run on the same data: a NumPy brute force (matmul + argpartition, the top-k a
practitioner writes first), our ``PartitionedTopK`` (approximate, stock TensorFlow ops only, so it
serves in the stock TF Serving image) at several settings, and the ScaNN ``AnnIndex`` kept beside
the SavedModel when ScaNN is installed.

    .venv/bin/python benchmarks/topk_catalogue.py [--shapes 1000000x64 100000x128]
        [--catalogue clustered random] [--probe-shares 0.025 0.1] [--no-scann]

Prints queries/s and the median time per call at batch sizes 1 and 256, recall@10 against the
exact top-10, and the throughput ratio to BruteForce at the same batch size. The "clustered"
catalogue is a Gaussian mixture (2,000 centres), like trained embeddings. The "random" one is
i.i.d. normal, the worst case for any partitioned index: it has no neighbourhoods.
"""

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np

# Before TensorFlow: Keras 2 for TFRS, and an installed scann no longer breaks importing TFRS.
import tfrec_fashion  # noqa: F401

# isort: split
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec_fashion.layers.partitioned_top_k import PartitionedTopK
from tfrec_fashion_export.ann_index import build_ann_index, recall_at_k
from tfrec_fashion_serving.ann import AnnIndex, import_scann_pybind

K = 10


def make_catalogue(kind, n_items, dim, n_queries, rng):
    """Items [N, D] and queries [Q, D], float32."""
    if kind == "random":
        return (rng.standard_normal((n_items, dim), dtype=np.float32),
                rng.standard_normal((n_queries, dim), dtype=np.float32))
    centres = rng.standard_normal((2000, dim), dtype=np.float32)
    def draw(n):
        return centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal(
            (n, dim), dtype=np.float32)
    return draw(n_items), draw(n_queries)


def numpy_top_k(items):
    def search(queries):
        scores = queries @ items.T
        best = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1)
        return np.take_along_axis(best, order, axis=1)
    return search


def tfrs_top_k(items):
    index = tfrs.layers.factorized_top_k.BruteForce(k=K)
    index.index(tf.constant(items), tf.range(len(items)))
    call = tf.function(lambda q: index(q, k=K)[1],
                       input_signature=[tf.TensorSpec([None, items.shape[1]], tf.float32)])
    return lambda queries: call(queries).numpy()


def partitioned_top_k(index, n_probe):
    """``PartitionedTopK`` at ``n_probe`` (its other settings as built), one tf.function."""
    index.set_search_params(n_probe, index.rerank)
    call = tf.function(lambda q: index(q, k=K)[1],
                       input_signature=[tf.TensorSpec([None, index.dim], tf.float32)])
    call = call.get_concrete_function()  # traced now, with this n_probe
    return lambda queries: call(tf.constant(queries)).numpy()


def ann_top_k(index):
    def search(queries):
        ids, _ = index.search(queries, [K], [""], np.zeros((1, 0), dtype=object))
        return ids
    return search


def scann_top_k(index):
    """The searcher inside ``AnnIndex``, without filters, padding and exact re-scoring."""
    reorder = index.params["reorder"] or 0
    def search(queries):
        ids, _ = index.searcher.search_batched(queries, final_num_neighbors=K,
                                               pre_reorder_num_neighbors=max(K, reorder))
        return ids
    return search


def measure(search, queries, batch, n_calls):
    """(queries/s, median seconds per call, ids found) over ``n_calls`` calls of ``batch``."""
    search(queries[:batch])  # warm-up (tf.function tracing, caches)
    times, found = [], []
    for start in range(0, n_calls * batch, batch):
        begin = time.perf_counter()
        found.append(search(queries[start:start + batch]))
        times.append(time.perf_counter() - begin)
    return n_calls * batch / sum(times), statistics.median(times), np.concatenate(found)


def run_catalogue(kind, n_items, dim, args, rng):
    items, queries = make_catalogue(kind, n_items, dim, 4 * 256, rng)
    item_ids = np.array([b"%d" % i for i in range(len(items))], dtype=object)
    exact = np.concatenate([numpy_top_k(items)(queries[start:start + 256])
                            for start in range(0, len(queries), 256)])
    methods = [("TFRS BruteForce", tfrs_top_k(items), (40, 3), None),
               ("NumPy matmul + argpartition", numpy_top_k(items), (40, 3), None)]
    notes = []
    partitions = None  # the k-means runs once; the other quantisations reuse its partitions
    for quantization in args.quantizations:
        begin = time.perf_counter()
        index = PartitionedTopK(k=K, quantization=quantization).index(items,
                                                                      partitions=partitions)
        if partitions is None:
            notes.append(f"PartitionedTopK built in {time.perf_counter() - begin:.1f} s: "
                         f"{index.built_n_partitions:,} partitions (largest "
                         f"{index.partition_sizes.max():,} items)")
        partitions = index.partitions
        shares = [None, *args.probe_shares] if quantization == args.quantizations[0] else [None]
        for share in shares:
            n_probe = None if share is None else max(1, round(share * index.built_n_partitions))
            search = partitioned_top_k(index, n_probe)  # None: the default n_probe
            name = (f"Partitioned {quantization[:4]} probe {index.built_n_probe}"
                    f" ({index.scanned_share:.1%})")
            methods.append((name, search, (300, 4), None))
    if args.with_scann:
        with tempfile.TemporaryDirectory() as directory:
            begin = time.perf_counter()
            params = build_ann_index(items, item_ids, np.full(len(items), b"", dtype=object),
                                     f"{directory}/ann")
            notes.append(f"ScaNN index built in {time.perf_counter() - begin:.1f} s: "
                         f"{params['num_leaves']} leaves, {params['leaves_to_search']} "
                         f"searched, reorder {params['reorder']}")
            index = AnnIndex.load(f"{directory}/ann")
        methods += [("ScaNN AnnIndex (custom code)", ann_top_k(index), (300, 4), item_ids)]
    rows = []
    for batch, pick in ((1, 0), (256, 1)):
        baseline = None
        for name, search, calls, ids in methods:
            rate, median, found = measure(search, queries, batch, calls[pick])
            if ids is not None:  # AnnIndex answers item ids: the row numbers are the ids here
                found = np.array([[int(i) for i in row] for row in found])
            baseline = baseline or rate
            recall = recall_at_k(found, exact[:len(found)])
            rows.append((name, batch, rate, median * 1000, recall, rate / baseline))
    print(f"\n{kind} catalogue, {n_items:,} x {dim}")
    for note in notes:
        print(f"  {note}")
    print(f"  {'method':<36}{'batch':>6}{'queries/s':>11}{'p50 ms/call':>13}"
          f"{'recall@10':>11}{'vs BruteForce':>15}")
    for name, batch, rate, median_ms, recall, ratio in rows:
        print(f"  {name:<36}{batch:>6}{rate:>11,.0f}{median_ms:>13.2f}{recall:>11.3f}"
              f"{ratio:>14.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["1000000x64", "100000x128"],
                        help="catalogues as ITEMSxDIM")
    parser.add_argument("--catalogue", nargs="+", default=["clustered", "random"],
                        choices=["clustered", "random"])
    parser.add_argument("--probe-shares", nargs="+", type=float, default=[0.025, 0.1],
                        help="shares of the partitions probed, beside the default n_probe")
    parser.add_argument("--quantizations", nargs="+", default=["bfloat16", "none", "int8"],
                        help="the first is swept over --probe-shares, the others at the default")
    parser.add_argument("--no-scann", action="store_true", help="skip the ScaNN rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("$ " + " ".join([sys.executable.split("/")[-1]] + sys.argv))
    print(f"TensorFlow {tf.__version__}, NumPy {np.__version__}; every method on this "
          f"machine's CPU threads; ScaNN searches one batch on one thread.")
    args.with_scann = not args.no_scann
    if args.with_scann:
        try:
            import_scann_pybind()
        except ImportError as error:  # still worth running without it
            print(f"ScaNN rows skipped: {error}")
            args.with_scann = False
    rng = np.random.default_rng(args.seed)
    for shape in args.shapes:
        n_items, dim = (int(v) for v in shape.lower().split("x"))
        for kind in args.catalogue:
            run_catalogue(kind, n_items, dim, args, rng)


if __name__ == "__main__":
    main()
