"""Product quantisation (PQ) of the residuals of an inverted-file index, for
``PartitionedTopK(quantization="pq")``, as Faiss's IVF-PQ and ScaNN score partitions.

A row v of partition p is stored as codes: v - c_p (its residual to the partition centroid) is
cut into S sub-spaces of ``dims_per_subspace`` dimensions, and each piece is replaced by the
nearest of ``n_codes`` centroids of that sub-space's codebook (k-means on the residuals, with
``partitioning.kmeans`` and ``partitioning.nearest_centroid``), one uint8 per sub-space. A query
q then scores a row asymmetrically (the query stays exact, ADC):

    q . v ~= q . c_p + sum_s LUT[s, code_s],   LUT[s, c] = q_s . codebook[s, c],

one table per query of S x n_codes inner products, then S table look-ups per row instead of D
multiply-adds over the row's vector (``adc_tables``, ``adc_scores``). A dimension count that is
not a multiple of ``dims_per_subspace`` is padded with zeros (queries and residuals alike), which
changes no inner product.

Measured (README "Approximate retrieval", 1M x 64, 2 loaded cores): in stock TensorFlow ops the
look-ups are scalar gathers (S per row, then a sum), which cost more than the bfloat16 scan's
dense [rows, 64] gather and matmul: at the same probe (1.3-5 %, two runs), pq answered batches
of 256 at 0.11-0.50x bfloat16's queries/s and single queries at 0.36-1.59x (median 0.7x), with
recall equal to bfloat16's at 256 codes per 4 dimensions and the default re-rank (8 dimensions
per code: 0.56-0.66x and 0.83-1.06x, but recall 0.960 against 1.000 on the clustered
catalogue). It is kept as an option, not the default. Faiss and ScaNN
win with SIMD shuffles over 4-bit codes held in registers, which no stock op expresses.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfrec_fashion.layers.partitioning import kmeans, nearest_centroid

# Defaults, chosen by measurement (README "Approximate retrieval", product quantisation).
DIMS_PER_SUBSPACE = 4
N_CODES = 256
MAX_CODES = 256  # codes are uint8


def check_n_codes(n_codes) -> None:
    """``pq_codes`` must be an integer in [2, MAX_CODES] (codes are uint8)."""
    if isinstance(n_codes, bool) or int(n_codes) != n_codes or not 2 <= n_codes <= MAX_CODES:
        raise ValueError(f"`pq_codes` must be an integer in [2, {MAX_CODES}] (codes are "
                         f"uint8). Received: pq_codes={n_codes!r}")


def n_subspaces(dim: int, dims_per_subspace: int) -> int:
    """Sub-spaces of a ``dim``-dimensional space (the last one padded with zeros)."""
    return math.ceil(dim / dims_per_subspace)


def _pieces(vectors: np.ndarray, dims_per_subspace: int) -> np.ndarray:
    """[N, D] -> [N, S, dims_per_subspace], zero-padded."""
    dim = vectors.shape[1]
    padded = np.pad(vectors, [(0, 0), (0, n_subspaces(dim, dims_per_subspace)
                                       * dims_per_subspace - dim)])
    return padded.reshape(len(vectors), -1, dims_per_subspace)


def train_codebooks(residuals: np.ndarray, dims_per_subspace: int, n_codes: int,
                    seed: int = 0) -> np.ndarray:
    """k-means codebooks of each sub-space of ``residuals`` float32 [N, D]: float32
    [S, n_codes, dims_per_subspace] (fewer rows than codes: the spare codes are zero vectors,
    which encode nothing worse than an absent code)."""
    check_n_codes(n_codes)
    pieces = _pieces(np.asarray(residuals, np.float32), dims_per_subspace)
    rng = np.random.default_rng(seed)
    codebooks = np.zeros((pieces.shape[1], n_codes, dims_per_subspace), np.float32)
    for s in range(pieces.shape[1]):
        centroids = kmeans(np.ascontiguousarray(pieces[:, s]), n_codes, rng)
        codebooks[s, :len(centroids)] = centroids
    return codebooks


def encode(residuals: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """The nearest codebook entry of each sub-space of each row: uint8 [N, S]."""
    pieces = _pieces(np.asarray(residuals, np.float32), codebooks.shape[2])
    return np.stack([nearest_centroid(np.ascontiguousarray(pieces[:, s]), codebooks[s])
                     for s in range(len(codebooks))], axis=1).astype(np.uint8)


def decode(codes: np.ndarray, codebooks: np.ndarray, dim: int) -> np.ndarray:
    """The residuals the codes stand for: float32 [N, dim]."""
    pieces = codebooks[np.arange(codebooks.shape[0]), codes.astype(np.int64)]  # [N, S, d]
    return pieces.reshape(len(codes), -1)[:, :dim]


def adc_tables(queries: tf.Tensor, codebooks: tf.Tensor) -> tf.Tensor:
    """Per query the look-up table of ``adc_scores``: float32 [B, S * n_codes], entry
    s * n_codes + c = q_s . codebook[s, c]."""
    n_sub, n_codes, width = codebooks.shape
    padded = tf.pad(queries, [[0, 0], [0, n_sub * width - queries.shape[-1]]])
    tables = tf.einsum("bsd,skd->bsk", tf.reshape(padded, [-1, n_sub, width]), codebooks)
    return tf.reshape(tables, [-1, n_sub * n_codes])


def adc_scores(tables: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
    """Approximate residual scores sum_s LUT[s, code_s] of rows ``codes`` uint8 [B, T, S] for
    their queries' ``tables`` [B, S * n_codes]: float32 [B, T]. One gather of flat indices
    s * n_codes + code: on 12,500 rows a query, 0.66x the time of a one-hot [T, S, 16] einsum at
    16 codes (one query), 0.27x (16 queries); int32 codes stored with the offsets added were
    no faster overall (1.13x at one query, 0.91x at 16), so the codes stay uint8."""
    n_sub = codes.shape[-1]
    n_codes = tables.shape[-1] // n_sub
    flat = tf.cast(codes, tf.int32) + tf.range(n_sub) * n_codes
    return tf.reduce_sum(tf.gather(tables, flat, batch_dims=1), axis=-1)
