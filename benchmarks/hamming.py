"""Benchmark: does hashing pay for itself? Hamming ranking of packed binary codes
(``HammingTopK``) against float inner-product brute force, on the same catalogue in one run.

    .venv/bin/python benchmarks/hamming.py [--items 1000000] [--queries 256]
        [--bits 64 128 256] [--rerank 100]

The catalogue is ``topk_catalogue.py``'s clustered one (a Gaussian mixture of 2,000 centres in
64-d, like trained embeddings; queries from the same mixture), normalised to unit length, so the
float baseline ranks by cosine, which sign codes approximate. The codes are the signs of a random
rotation of the float vectors (bit i = sign of <x, r_i>, r_i orthonormal; SimHash without
learning; for more bits than dimensions, random directions), so the Hamming top-10 can be scored
against the float top-10 (recall@10). Each code length in ``--bits`` adds two rows.

The baseline is the exact float top-10: ``tf.matmul`` + ``tf.math.top_k`` a chunk of items at a
time (one tf.function). Printed for each method: queries/s at a batch of ``--queries``, the
median time per batch, recall@10 against the baseline's top-10, the item table's bytes, and the
speed and memory ratios to the baseline. A re-ranking row re-scores the Hamming top-``--rerank``
with the float vectors (so it needs both tables: its memory is the float table's plus the codes').
"""

import argparse
import statistics
import sys
import time

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import tensorflow as tf
from topk_catalogue import make_catalogue

from tfrec_fashion.layers.hamming import HammingTopK

FLOAT_CHUNK = 16384  # float scores of 256 queries x 16,384 items: 16 MiB


def float_top_k(items, k):
    """Exact top-k by inner product: chunked matmul + TopKV2, merged across chunks."""
    n_items, dim = items.shape
    n_chunks = -(-n_items // FLOAT_CHUNK)
    table = np.zeros((n_chunks * FLOAT_CHUNK, dim), np.float32)
    table[:n_items] = items
    table = tf.constant(table.reshape(n_chunks, FLOAT_CHUNK, dim))
    padding = tf.reshape(tf.range(n_chunks * FLOAT_CHUNK) >= n_items, [n_chunks, FLOAT_CHUNK])

    @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)])
    def search(queries):
        def chunk(elems):
            vectors, is_padding = elems
            scores = tf.where(is_padding, -np.inf, tf.matmul(queries, vectors, transpose_b=True))
            return tuple(tf.math.top_k(scores, k))
        scores, positions = tf.map_fn(chunk, (table, padding), parallel_iterations=2,
                                      fn_output_signature=(tf.float32, tf.int32))
        indices = positions + FLOAT_CHUNK * tf.range(n_chunks)[:, None, None]
        scores = tf.reshape(tf.transpose(scores, [1, 0, 2]), [tf.shape(queries)[0], -1])
        indices = tf.reshape(tf.transpose(indices, [1, 0, 2]), [tf.shape(queries)[0], -1])
        best_scores, best = tf.math.top_k(scores, k)
        return best_scores, tf.gather(indices, best, batch_dims=1)

    return lambda queries: search(queries)[1].numpy()


def hamming_top_k(index, bits, k):
    call = tf.function(lambda codes: index(codes, k=k)[1],
                       input_signature=[tf.TensorSpec([None, bits], tf.float32)])
    return lambda codes: call(codes).numpy()


def rerank_top_k(hamming_search, items, k):
    """Hamming top-``rerank`` (the search given), re-scored by float inner product; top-k."""
    def search(queries, codes):
        candidates = hamming_search(codes)
        scores = np.einsum("qd,qrd->qr", queries, items[candidates])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(candidates, order, axis=1)
    return search


def timed(methods, repeats):
    """[(median seconds per call, answer)] per method, after one warm-up call each. The methods
    take turns, one call each per round, so load from other processes falls on all of them."""
    answers = [search(*inputs) for _, search, inputs, _ in methods]
    times = [[] for _ in methods]
    for _ in range(repeats):
        for (_, search, inputs, _), spent in zip(methods, times):
            begin = time.perf_counter()
            search(*inputs)
            spent.append(time.perf_counter() - begin)
    return [(statistics.median(spent), found) for spent, found in zip(times, answers)]


def recall_at_k(found, exact):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=256, help="the batch size")
    parser.add_argument("--dim", type=int, default=64, help="float embedding size")
    parser.add_argument("--bits", type=int, nargs="+", default=[64, 128, 256],
                        help="code lengths, each against the same baseline")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rerank", type=int, default=100,
                        help="Hamming candidates re-scored by float vectors")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of one timed call per method")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("$ " + " ".join([sys.executable.split("/")[-1]] + sys.argv))
    print(f"TensorFlow {tf.__version__}, NumPy {np.__version__}, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} intra-op threads")

    rng = np.random.default_rng(args.seed)
    items, queries, _ = make_catalogue("clustered", args.items, args.dim, args.queries, rng)
    # Unit vectors: sign codes keep a vector's direction and lose its length, so they can rank by
    # angle (cosine) and not by raw inner product, where long vectors win whatever the direction
    # (unnormalised, recall@10 fell to 0.07). Retrieval embeddings are usually normalised anyway.
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # Every row's inputs are built before any is timed, so rows differ only in the search.
    methods = [("float matmul + top_k (exact)", float_top_k(items, args.k), (queries,),
                items.nbytes)]
    notes = []
    for bits in args.bits:
        # bits <= dim: orthonormal directions (a random rotation); more: random projections.
        rotation = np.linalg.qr(rng.standard_normal((max(args.dim, bits), bits)))[0]
        rotation = rotation[:args.dim].astype(np.float32)
        item_codes = np.where(items @ rotation > 0, 1.0, -1.0).astype(np.float32)
        query_codes = np.where(queries @ rotation > 0, 1.0, -1.0).astype(np.float32)
        begin = time.perf_counter()
        index = HammingTopK(k=args.k).index(item_codes)
        notes.append(f"{bits} bits packed in {time.perf_counter() - begin:.1f} s")
        methods += [
            (f"Hamming top-{args.k}, {bits}-bit codes", hamming_top_k(index, bits, args.k),
             (query_codes,), index.item_table_bytes),
            (f"  + float re-rank of its top-{args.rerank}",
             rerank_top_k(hamming_top_k(index, bits, args.rerank), items, args.k),
             (queries, query_codes), items.nbytes + index.item_table_bytes),
        ]
    print(f"{args.items:,} items x {args.dim}-d float32 (unit length), codes = signs of random "
          f"directions; {args.queries} queries per batch, top-{args.k}\n  {'; '.join(notes)}")
    print(f"  {'method':<36}{'queries/s':>10}{'ms/batch':>10}{'recall@10':>11}"
          f"{'table MB':>10}{'speed-up':>10}{'memory':>10}")
    results = timed(methods, args.repeats)
    (base_seconds, exact), base_bytes = results[0], methods[0][3]
    for (name, _, _, table_bytes), (seconds, found) in zip(methods, results):
        print(f"  {name:<36}{args.queries / seconds:>10,.0f}{seconds * 1000:>10.0f}"
              f"{recall_at_k(found, exact):>11.3f}{table_bytes / 2**20:>10.1f}"
              f"{base_seconds / seconds:>9.2f}x{base_bytes / table_bytes:>9.1f}x")
    print("  (speed-up: baseline time / method time; memory: baseline table / method table, "
          "x smaller; a re-ranking row holds both tables)")


if __name__ == "__main__":
    main()
