"""``PartitionedTopK``: approximate top-k by inner product from stock TensorFlow ops only.

TFRS's ScaNN layer needs ScaNN's custom ops, which the stock TensorFlow Serving binary does not
register. This index is a ``tfrs.layers.factorized_top_k.TopK`` like BruteForce, built from ops
every TensorFlow has (MatMul, TopKV2, GatherV2, RaggedRange, ...), so a SavedModel holding it
serves in the stock ``tensorflow/serving`` image unchanged.

How a query is answered (an inverted-file index):

1. ``index`` splits the candidates into k-means partitions (NumPy and TensorFlow, at index
   time; see ``partitioning.py``), each of one category, and stores the rows sorted by
   partition.
2. A query scores the P partition centroids (one [B, D] x [D, P] matmul) and keeps the
   ``n_probe`` best; with a category filter, only that category's partitions compete.
3. The rows of the probed partitions are gathered and scored: exactly (``quantization="none"``),
   on a bfloat16 / int8 copy of the vectors (half / a quarter of the bytes to gather), or by
   product quantisation of their residuals to the partition centroid ("pq": one uint8 code per
   sub-space of 4 dimensions, scored by table look-ups; see ``product_quantization.py``).
4. Quantised scores keep the best ``rerank`` candidates, which are re-scored exactly in float32,
   so every returned score is the exact inner product; only recall is approximate.
5. Excluded identifiers are dropped from those candidates and the best k are returned, padded
   with score -inf (and identifier -1 or "") when fewer qualify.

With ``n_probe`` covering every partition and ``rerank`` covering every candidate (or no
quantisation), the answers are BruteForce's. Recall against speed is set by ``n_probe`` (the
share of the catalogue scored per query) and, with quantisation, ``rerank``; see
``default_n_probe`` and README "Approximate retrieval" for the measurements behind the defaults.

Usage::

    index = PartitionedTopK(k=10)
    index.index(item_vectors, identifiers=item_ids, categories=item_categories)
    scores, ids = index(query_vectors)                        # the TopK contract
    scores, ids = index.search(query_vectors, k=10, categories=wanted, exclusions=seen)
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec_fashion.layers import product_quantization as pq
from tfrec_fashion.layers.partitioning import default_n_partitions, partition
from tfrec_fashion.layers.row_sets import in_row_sets
from tfrec_fashion.serialization import register_serializable

QUANTIZATIONS = ("none", "bfloat16", "int8", "pq")
# Partitions probed by default: PROBE_PER_SQRT * sqrt(P). A query's neighbourhood spans a number
# of partitions that grows more slowly than the catalogue, so a fixed share over-probes large
# ones: measured by benchmarks/topk_catalogue.py on its clustered catalogues, recall@10 reached
# 0.96 at 5 % of 497 partitions (100,000 x 128; 0.91 at 2.4 %) but 1.000 at 2.5 % of 4,146
# (1,000,000 x 64), where 5 % cost twice the time. 1.5 sqrt(P) probes 6.7 % and 2.3 % of those.
PROBE_PER_SQRT = 1.5
DEFAULT_RERANK = 100
# Scoring a few thousand rows takes well under a millisecond, so small catalogues are probed
# until about this many rows are scored (everything, below it): approximate only where it pays.
MIN_SCANNED_ROWS = 4096
# Queries are scanned in blocks whose gathered rows (bytes as scored: 2 per value for bfloat16,
# 4 otherwise) stay under BLOCK_BYTES (see ``search``). A larger tensor is allocated with a fresh
# mmap on every call (glibc maps anything above 32 MiB), and its page faults then cost more than
# the arithmetic: on 1M x 64 at batch 256 and a 2.5 % probe (26k rows, 6.6 MB per query), blocks
# of 8 queries (27 MB) gave 862 queries/s and blocks of 10 (33 MB) 419; at 5 %, blocks of 4
# (27 MB) 438 and blocks of 5 (33 MB) 350; one query per block gave 462 and 308.
BLOCK_BYTES = 24 * 2**20
MAX_QUERY_BLOCK = 16


def default_n_probe(n_partitions: int, n_items: int) -> int:
    """``PROBE_PER_SQRT`` * sqrt(P) partitions, and enough of them to score about
    ``MIN_SCANNED_ROWS`` rows; at least 1, at most all."""
    by_size = math.ceil(MIN_SCANNED_ROWS / max(n_items, 1) * n_partitions)
    return max(1, min(n_partitions, max(math.ceil(PROBE_PER_SQRT * math.sqrt(n_partitions)),
                                        by_size)))


def _check_positive(**values) -> None:
    """Each value must be None or a positive integer."""
    for label, value in values.items():
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"`{label}` must be a positive integer. Received: {value!r}")


@register_serializable
class PartitionedTopK(tfrs.layers.factorized_top_k.TopK):
    """Approximate top-k retrieval over k-means partitions, from stock TensorFlow ops.

    Args:
        query_model: optional Keras model turning raw query features into query vectors.
        k: default number of candidates returned.
        n_partitions: k-means partitions (default N / 256 at ``index`` time). Balancing splits
            and one partition per category at least may add a few.
        n_probe: partitions scored per query (default ``default_n_probe``: 1.5 sqrt(P), and
            at least 4,096 rows' worth). ``set_search_params`` changes it after ``index``.
        rerank: with quantisation, candidates re-scored exactly per query (default 100).
        quantization: "none", "bfloat16" (default), "int8" (symmetric, one scale per
            dimension) or "pq" (product quantisation of the residuals; measured slower than
            bfloat16 on CPU, see ``product_quantization.py``) for the partition scan.
        pq_dims: with "pq", dimensions per sub-space (one code each; default 4).
        pq_codes: with "pq", codebook entries per sub-space, 2 to 256 (default 256).
        seed: seeds the k-means; the same candidates and seed give the same index.
        name: layer name.
    """

    def __init__(self, query_model: tf.keras.Model | None = None, k: int = 10,
                 n_partitions: int | None = None, n_probe: int | None = None,
                 rerank: int | None = None, quantization: str = "bfloat16", seed: int = 0,
                 pq_dims: int = pq.DIMS_PER_SUBSPACE, pq_codes: int = pq.N_CODES,
                 name: str | None = None, **kwargs):
        super().__init__(k=k, name=name, **kwargs)
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}. "
                             f"Received: quantization={quantization!r}")
        _check_positive(k=k, n_partitions=n_partitions, n_probe=n_probe, rerank=rerank,
                        pq_dims=pq_dims)
        pq.check_n_codes(pq_codes)
        self.query_model = query_model
        self.n_partitions = n_partitions
        self.n_probe = n_probe
        self.rerank = rerank
        self.quantization = quantization
        self.seed = seed
        self.pq_dims = int(pq_dims)
        self.pq_codes = int(pq_codes)
        self._centroids = None

    # ------------------------------------------------------------------ building
    def index(self, candidates, identifiers=None, categories=None,
              partitions=None) -> PartitionedTopK:
        """Builds the index (k-means on the candidates); calling it again replaces it.

        Args:
            candidates: float32 [N, D] candidate vectors.
            identifiers: [N] returned for the candidates (default their row numbers, int32).
            categories: optional int [N] in [0, C): a category per candidate, which ``search``
                can filter on; partitions never mix categories.
            partitions: optionally the ``partitions`` of an index built earlier on the same
                candidates and categories (centroids, partition categories, assignment), to
                skip the k-means, e.g. to compare quantisations.

        Returns:
            self.
        """
        vectors = np.asarray(candidates, np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"The candidates tensor must be 2D with at least one row "
                             f"(got {vectors.shape}).")
        if not np.isfinite(vectors).all():
            raise ValueError("The candidates must be finite (NaN or infinity found).")
        n_items = len(vectors)
        identifiers = (np.arange(n_items, dtype=np.int32) if identifiers is None
                       else np.asarray(identifiers))
        if identifiers.shape != (n_items,):
            raise ValueError(f"The candidates and identifiers tensors must have the same number "
                             f"of rows (got {n_items} and {identifiers.shape}).")
        if categories is not None:
            categories = np.asarray(categories)
            if (categories.shape != (n_items,) or not np.issubdtype(categories.dtype, np.integer)
                    or categories.min() < 0):
                raise ValueError(f"`categories` must be {n_items} integers >= 0. Received: "
                                 f"shape={categories.shape}, dtype={categories.dtype}")
        if partitions is None:
            wanted = min(self.n_partitions or default_n_partitions(n_items), n_items)
            partitions = partition(vectors, wanted, categories, self.seed)
        centroids, partition_categories, assignment = partitions
        if len(assignment) != n_items:
            raise ValueError(f"`partitions` assign {len(assignment)} rows; the candidates have "
                             f"{n_items}.")
        self.partitions = partitions
        order = np.argsort(assignment, kind="stable")
        sizes = np.bincount(assignment, minlength=len(centroids))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        # Row N of the sorted tables is padding: a zero vector, masked to -inf when scored.
        sorted_vectors = np.concatenate([vectors[order], np.zeros((1, vectors.shape[1]),
                                                                  np.float32)])
        padding_id = b"" if identifiers.dtype.kind in "OSU" else -1
        sorted_ids = np.concatenate([identifiers[order], np.array([padding_id],
                                                                  identifiers.dtype)])
        self.n_items, self.dim = n_items, vectors.shape[1]
        self.built_n_partitions = len(centroids)
        self.partition_sizes = sizes
        self.set_search_params(self.n_probe, self.rerank)

        self._centroids = self._constant("centroids", centroids)
        self._partition_categories = self._constant("partition_categories",
                                                    partition_categories)
        self._starts = self._constant("partition_starts", starts.astype(np.int32))
        self._sizes = self._constant("partition_sizes", sizes.astype(np.int32))
        self._vectors = self._constant("sorted_vectors", sorted_vectors)
        self._identifiers = self._constant("sorted_identifiers", tf.constant(sorted_ids))
        if self.quantization == "bfloat16":
            self._scan_vectors = self._constant("scan_vectors",
                                                tf.cast(sorted_vectors, tf.bfloat16))
        elif self.quantization == "int8":
            scale = np.abs(sorted_vectors).max(axis=0) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            self._scan_scale = self._constant("scan_scale", scale)
            self._scan_vectors = self._constant(
                "scan_vectors", np.round(sorted_vectors / scale).astype(np.int8))
        elif self.quantization == "pq":
            residuals = vectors[order] - centroids[assignment[order]]
            codebooks = pq.train_codebooks(residuals, self.pq_dims, self.pq_codes, self.seed)
            self._codebooks = self._constant("pq_codebooks", codebooks)
            # The padding row's codes are zeros like any row's; its score is masked.
            self._scan_vectors = self._constant("scan_vectors", np.concatenate(
                [pq.encode(residuals, codebooks), np.zeros((1, len(codebooks)), np.uint8)]))
            self._row_partitions = self._constant("row_partitions", np.concatenate(
                [np.sort(assignment), [0]]).astype(np.int32))
        self._reset_tf_function_cache()
        return self

    def set_search_params(self, n_probe: int | None = None, rerank: int | None = None) -> None:
        """Sets the recall / speed trade of a built index without re-running k-means.

        Args:
            n_probe: partitions scored per query (None: the default for this index's size);
                more than there are means all.
            rerank: candidates re-scored exactly after a quantised scan (None: 100).
        """
        _check_positive(n_probe=n_probe, rerank=rerank)
        n_probe = n_probe or default_n_probe(self.built_n_partitions, self.n_items)
        self.built_n_probe = min(int(n_probe), self.built_n_partitions)
        self.built_rerank = int(rerank or DEFAULT_RERANK)
        if self.quantization == "pq":  # the widest per-row tensor: S int32 indices / floats
            bytes_per_row = 4 * pq.n_subspaces(self.dim, self.pq_dims)
        else:
            bytes_per_row = self.dim * (2 if self.quantization == "bfloat16" else 4)
        bytes_per_query = self.built_n_probe * float(self.partition_sizes.mean()) * bytes_per_row
        self.query_block = int(np.clip(BLOCK_BYTES // max(bytes_per_query, 1.0), 1,
                                       MAX_QUERY_BLOCK))
        self._reset_tf_function_cache()

    @property
    def scanned_share(self) -> float:
        """Expected share of the catalogue scored per unfiltered query (partitions probed over
        partitions, in items)."""
        return min(1.0, self.built_n_probe * float(self.partition_sizes.mean()) / self.n_items)

    def _constant(self, name: str, value) -> tf.Variable:
        """A non-trainable weight holding ``value`` (saved with the layer, like BruteForce's)."""
        value = tf.convert_to_tensor(value)
        weight = self.add_weight(name=name, shape=value.shape, dtype=value.dtype,
                                 initializer=tf.keras.initializers.Constant(
                                     tf.zeros((), value.dtype)) if value.dtype == tf.string
                                 else tf.keras.initializers.Zeros(), trainable=False)
        weight.assign(value)
        return weight

    # ------------------------------------------------------------------ searching
    def call(self, queries, k: int | None = None):
        """Top-k of each query: (scores float32 [B, k], identifiers [B, k])."""
        return self.search(queries, k)

    @tf.function
    def query_with_exclusions(self, queries, exclusions, k=None):
        """Top-k leaving out ``exclusions`` [B, M] (identifiers), as TFRS's TopK."""
        return self.search(queries, k, exclusions=exclusions)

    def search(self, queries, k=None, categories=None, exclusions=None):
        """Top-k per query, optionally within one category and without some identifiers.

        Args:
            queries: float32 [B, D] query vectors (raw features with a ``query_model``).
            k: how many (default the constructor's); a Python int or int32 scalar tensor.
            categories: optional int32 [B]: a category index per row, or -1 for any; or a
                bool mask [B, C]: the categories each row may return (several at once, e.g. an
                item's complementary categories).
            exclusions: optional [B, M] identifiers never to return (e.g. seen items).

        Returns:
            (scores float32 [B, k], identifiers [B, k]), best first; rows with fewer than k
            eligible candidates are padded with score -inf and identifier -1 (or "").
        """
        if self._centroids is None:
            raise ValueError("The `index` method must be called first to create the "
                             "retrieval index.")
        k = self._k if k is None else k
        if self.query_model is not None:
            queries = self.query_model(queries)
        queries = tf.convert_to_tensor(queries, tf.float32)
        batch = tf.shape(queries)[0]
        categories = (tf.fill([batch], -1) if categories is None
                      else tf.convert_to_tensor(categories))
        masked = categories.dtype == tf.bool
        if not masked:
            categories = tf.cast(categories, tf.int32)
        padding = self._identifiers[-1]
        exclusions = (tf.fill([batch, 0], padding) if exclusions is None
                      else tf.convert_to_tensor(exclusions, padding.dtype))
        # Queries are answered a block at a time: each block gathers only its own probed rows,
        # under BLOCK_BYTES, so the scan's working set stays small (one [B, T, D] gather for a
        # batch of 256 costs more in fresh memory than in arithmetic).
        block = tf.minimum(batch, self.query_block)
        blocks = (batch + block - 1) // block
        extra = blocks * block - batch

        def blocked(tensor, fill):
            padded = tf.concat([tensor, tf.fill(tf.concat([[extra], tf.shape(tensor)[1:]], 0),
                                                fill)], axis=0)
            return tf.reshape(padded, tf.concat([[blocks, block], tf.shape(tensor)[1:]], 0))

        scores, identifiers = tf.map_fn(
            lambda block: self._search_block(*block, k),
            (blocked(queries, 0.0), blocked(categories, False if masked else -1),
             blocked(exclusions, padding)),
            fn_output_signature=(tf.float32, padding.dtype), parallel_iterations=2)
        width = tf.shape(scores)[-1]
        return (tf.reshape(scores, [-1, width])[:batch],
                tf.reshape(identifiers, [-1, width])[:batch])

    def _search_block(self, queries, categories, exclusions, k):
        """``search`` for one block of queries [C, D], categories [C] (or a mask [C, n]),
        exclusions [C, M]."""
        rows_in_block = tf.shape(queries)[0]
        fetch = k + tf.shape(exclusions)[1]
        centroid_scores = tf.matmul(queries, self._centroids, transpose_b=True)  # [C, P]
        exact_centroid_scores = centroid_scores
        if categories.dtype == tf.bool:  # a mask: the partitions of any allowed category
            allowed = tf.gather(categories, self._partition_categories, axis=1)
        else:
            allowed = tf.logical_or(categories[:, None] < 0,
                                    self._partition_categories[None, :] == categories[:, None])
        centroid_scores = tf.where(allowed, centroid_scores, -np.inf)
        probe_scores, probes = tf.math.top_k(centroid_scores, self.built_n_probe)
        # A probe of a filtered-out partition (the category has fewer than n_probe) adds no rows.
        sizes = tf.where(probe_scores > -np.inf, tf.gather(self._sizes, probes), 0)
        starts = tf.reshape(tf.gather(self._starts, probes), [-1])
        ranges = tf.ragged.range(starts, starts + tf.reshape(sizes, [-1]))
        rows = tf.RaggedTensor.from_row_lengths(
            ranges.flat_values, tf.cast(tf.reduce_sum(sizes, axis=1), tf.int64))
        width = tf.maximum(tf.cast(rows.bounding_shape(axis=1), tf.int32), fetch)
        rows = rows.to_tensor(default_value=self.n_items, shape=tf.stack([rows_in_block, width]))

        if self.quantization == "none":
            scan = tf.einsum("bd,btd->bt", queries, tf.gather(self._vectors, rows))
        elif self.quantization == "bfloat16":
            scan = tf.cast(tf.einsum("bd,btd->bt", tf.cast(queries, tf.bfloat16),
                                     tf.gather(self._scan_vectors, rows)), tf.float32)
        elif self.quantization == "int8":
            scan = tf.einsum("bd,btd->bt", queries * self._scan_scale,
                             tf.cast(tf.gather(self._scan_vectors, rows), tf.float32))
        else:  # q . c_p + the residual's table look-ups
            scan = tf.gather(exact_centroid_scores, tf.gather(self._row_partitions, rows),
                             batch_dims=1) + pq.adc_scores(
                pq.adc_tables(queries, self._codebooks), tf.gather(self._scan_vectors, rows))
        # Exact scans keep what is returned; quantised ones keep `rerank` for exact re-scoring.
        depth = (fetch if self.quantization == "none"
                 else tf.minimum(tf.maximum(fetch, self.built_rerank), width))
        scan = tf.where(rows < self.n_items, scan, -np.inf)
        scores, best = tf.math.top_k(scan, depth)
        candidates = tf.gather(rows, best, batch_dims=1)  # [C, depth] sorted-table rows
        if self.quantization != "none":  # exact re-scoring of the survivors
            scores = tf.einsum("bd,brd->br", queries, tf.gather(self._vectors, candidates))
            scores = tf.where(candidates < self.n_items, scores, -np.inf)
        identifiers = tf.gather(self._identifiers, candidates)
        hit = in_row_sets(identifiers, exclusions)
        scores, order = tf.math.top_k(tf.where(hit, -np.inf, scores), k)
        identifiers = tf.gather(identifiers, order, batch_dims=1)
        return scores, tf.where(scores > -np.inf, identifiers, self._identifiers[-1])

    def is_exact(self) -> bool:
        """True when every partition is probed and every candidate is scored exactly."""
        if self._centroids is None:
            return False
        full_probe = self.built_n_probe >= self.built_n_partitions
        return full_probe and (self.quantization == "none" or self.built_rerank >= self.n_items)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"k": self._k, "n_partitions": self.n_partitions,
                       "n_probe": self.n_probe, "rerank": self.rerank,
                       "quantization": self.quantization, "seed": self.seed,
                       "pq_dims": self.pq_dims, "pq_codes": self.pq_codes})
        return config
