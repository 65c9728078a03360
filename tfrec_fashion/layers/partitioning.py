"""K-means partitions of a catalogue for ``PartitionedTopK`` (NumPy, with the nearest-centroid
assignments in TensorFlow), seeded and reproducible.

The centroids are trained on ``SAMPLE_PER_PARTITION`` rows per partition (at most
``MAX_SAMPLE``): fewer cost recall (on the clustered 100,000 x 128 catalogue of
``benchmarks/topk_catalogue.py`` at a 5 % probe: 16 rows per partition 0.82, 64 rows 0.95,
256 rows 0.98; a two-level k-means, sqrt(P) coarse clusters each split into fine ones, trained
in a quarter of the time but reached 0.90).

``partition(vectors, n_partitions, categories, seed)`` splits the rows into partitions that are
each of one category (so a category filter probes only that category's partitions, and every
candidate it scores is eligible), each category getting partitions in proportion to its size.
Partitions larger than ``MAX_SIZE_RATIO`` times the mean are split again by 2-means until none
is: the search pads every query's candidates to the longest probed set in its block of queries,
so one giant partition would cost every query beside it.

Speed (issue 23): almost all of a build is assigning rows to their nearest centroid, P scores per
row (1M x 64: 12 Lloyd steps over a 262,144-row sample and one pass over every row, 86 s of
which 84 s in ``nearest_centroid``: 36 s matmul, 49 s subtracting the half-norms and argmax over
0.5 GB score chunks). They now run in TensorFlow in 1,024-row blocks whose scores stay in cache
(``_nearest_centroid_tf``: 3.5 us per row against 4,146 centroids on 2 quiet cores), still exact.
Measured and dropped: scoring each sample row only against the 64 or 128 centroids nearest to
its previous one after 3 or 6 exact Lloyd steps (in high dimensions a row's nearest centroid is
often not near its previous one: 62-99 % agreement with the exact step on the random 100,000 x
128 catalogue, and recall@10 at the default probe fell from 0.291 to 0.262), and fewer Lloyd
steps (8: 0.285, 6: 0.280; clustered 0.980 -> 0.976, 0.967).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import tensorflow as tf

# Lloyd iterations, and the training sample per partition (the rest of the rows are assigned once).
ITERATIONS = 12
SAMPLE_PER_PARTITION = 256
MAX_SAMPLE = 262_144
# Default partition size: small partitions follow the data's neighbourhoods closely, so a query
# reaches its top-k while scoring a smaller share of the catalogue (measured, README).
TARGET_PARTITION_SIZE = 256
MAX_SIZE_RATIO = 2.0
CHUNK = 32_768
# nearest_centroid runs in TensorFlow from this many scores (rows x centroids) on.
TF_FROM_SCORES = 2**22
TF_BLOCK = 1024


def default_n_partitions(n_items: int) -> int:
    """Partitions of about ``TARGET_PARTITION_SIZE`` items, at least 1."""
    return max(1, round(n_items / TARGET_PARTITION_SIZE))


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of each row, int64 [N], exactly: in TensorFlow
    (all cores) in blocks of ``TF_BLOCK`` rows when there are many scores, else in NumPy."""
    half_norms = 0.5 * np.einsum("pd,pd->p", centroids, centroids)
    if len(vectors) * len(centroids) >= TF_FROM_SCORES:
        return _nearest_centroid_tf(tf.constant(vectors), tf.constant(centroids),
                                    tf.constant(half_norms)).numpy()
    out = np.empty(len(vectors), np.int64)
    for start in range(0, len(vectors), CHUNK):
        block = vectors[start:start + CHUNK]
        out[start:start + CHUNK] = np.argmax(block @ centroids.T - half_norms, axis=1)
    return out


@tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                              tf.TensorSpec([None, None], tf.float32),
                              tf.TensorSpec([None], tf.float32)], autograph=False)
def _nearest_centroid_tf(vectors, centroids, half_norms):
    """``nearest_centroid`` in blocks of ``TF_BLOCK`` rows: a block's [TF_BLOCK, P] scores stay
    in cache between the matmul and the argmax (NumPy's 32,768-row chunks spent more time in the
    subtraction and argmax over 0.5 GB of scores than in the matmul: 49 s against 36 s of an
    86 s build of 1M x 64)."""
    n_rows = tf.shape(vectors)[0]
    padded = tf.pad(vectors, [[0, -n_rows % TF_BLOCK], [0, 0]])
    blocks = tf.reshape(padded, [-1, TF_BLOCK, tf.shape(vectors)[1]])
    nearest = tf.map_fn(
        lambda rows: tf.argmax(tf.matmul(rows, centroids, transpose_b=True) - half_norms,
                               axis=1),
        blocks, fn_output_signature=tf.int64, parallel_iterations=1)
    return tf.reshape(nearest, [-1])[:n_rows]


def kmeans(vectors: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means on a sample of ``SAMPLE_PER_PARTITION`` rows per cluster (at most
    ``MAX_SAMPLE``); returns the centroids float32 [n_clusters, D]. An emptied cluster restarts
    at a random sample row."""
    n_clusters = min(n_clusters, len(vectors))
    size = min(len(vectors), max(n_clusters, min(MAX_SAMPLE, SAMPLE_PER_PARTITION * n_clusters)))
    sample = vectors[np.sort(rng.choice(len(vectors), size, replace=False))]
    centroids = sample[rng.choice(size, n_clusters, replace=False)].astype(np.float32)
    for _ in range(ITERATIONS):
        assignment = nearest_centroid(sample, centroids)
        counts = np.bincount(assignment, minlength=n_clusters)
        sums = scipy.sparse.csr_matrix(
            (np.ones(size, np.float32), (assignment, np.arange(size))),
            shape=(n_clusters, size)) @ sample
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = np.flatnonzero(~filled)
        centroids[empty] = sample[rng.choice(size, len(empty), replace=False)]
    return centroids


def cluster(vectors: np.ndarray, n_clusters: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centroids float32 [K, D], assignment int64 [N]) of ``n_clusters`` k-means clusters;
    clusters left empty by the final assignment are dropped."""
    centroids = kmeans(vectors, n_clusters, rng)
    used, assignment = np.unique(nearest_centroid(vectors, centroids), return_inverse=True)
    return centroids[used], assignment.reshape(-1)


def _split_large(vectors: np.ndarray, members: list[np.ndarray], centroids: list[np.ndarray],
                 cap: int, rng: np.random.Generator) -> tuple[list, list]:
    """Splits every member list longer than ``cap`` by 2-means (a median split along the centroid
    difference if 2-means leaves one side empty) until none is."""
    done_members, done_centroids = [], []
    todo = list(zip(members, centroids))
    while todo:
        rows, centroid = todo.pop()
        if len(rows) <= cap:
            done_members.append(rows)
            done_centroids.append(centroid)
            continue
        pair = kmeans(vectors[rows], 2, rng)
        side = nearest_centroid(vectors[rows], pair)
        if side.min() == side.max():  # degenerate (duplicates): halve along the first axis
            side = (np.arange(len(rows)) >= len(rows) // 2).astype(np.int64)
        for half in (0, 1):
            part = rows[side == half]
            todo.append((part, vectors[part].mean(axis=0)))
    return done_members, done_centroids


def partition(vectors: np.ndarray, n_partitions: int, categories: np.ndarray | None = None,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partitions the rows of ``vectors``.

    Args:
        vectors: float32 [N, D].
        n_partitions: the number of k-means partitions overall (before balancing splits).
        categories: int [N] in [0, C), or None (one category).
        seed: the same inputs and seed give the same partitions.

    Returns:
        (centroids float32 [P, D], partition_categories int32 [P], assignment int64 [N]):
        P may exceed ``n_partitions`` by the balancing splits and by one partition at least per
        category.
    """
    vectors = np.asarray(vectors, np.float32)
    n_items = len(vectors)
    categories = np.zeros(n_items, np.int64) if categories is None else np.asarray(categories)
    rng = np.random.default_rng(seed)
    cap = max(1, math.ceil(MAX_SIZE_RATIO * n_items / n_partitions))
    all_centroids, all_categories, assignment = [], [], np.empty(n_items, np.int64)
    for category in np.unique(categories):
        rows = np.flatnonzero(categories == category)
        wanted = max(1, round(n_partitions * len(rows) / n_items))
        centroids, nearest = cluster(vectors[rows], wanted, rng)
        order = np.argsort(nearest, kind="stable")
        members = np.split(rows[order], np.cumsum(np.bincount(nearest))[:-1])
        members, centroids = _split_large(vectors, members, list(centroids), cap, rng)
        for rows_of_partition, centroid in zip(members, centroids):
            assignment[rows_of_partition] = len(all_centroids)
            all_centroids.append(centroid)
            all_categories.append(category)
    return (np.asarray(all_centroids, np.float32), np.asarray(all_categories, np.int32),
            assignment)
