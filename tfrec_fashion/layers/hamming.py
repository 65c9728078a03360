"""``HammingTopK``: exact top-k by Hamming distance over packed binary codes, from stock ops.

PAN (and Lu et al.'s binary-code recommender it builds on) replaces the user and item embeddings
by binary codes ``b`` in {-1, +1}^B (PAN sec. 2.1-2.2) so that the preference score
``b_u W b_j`` (eq. 4, with W = I) becomes a count of agreeing bits. For B-bit ±1 codes

    <b_u, b_j> = B - 2 * hamming(b_u, b_j),

so ranking items by smallest Hamming distance is ranking them by largest inner product of the
codes. Packed into machine words, a code costs B / 8 bytes instead of 4 * D for a float vector
(64 bits: 8 bytes against 256 for D = 64), and a distance is one XOR and one popcount per word.

Everything here is stock TensorFlow (``BitwiseXor``, ``PopulationCount``, ``Bitcast``,
``TopKV2``, ...), so a SavedModel holding a ``HammingTopK`` serves in the stock
``tensorflow/serving`` image (checked by ``export/graph_ops.py`` in the tests).

Packing (``pack_codes``, NumPy twin ``pack_codes_numpy``): bit i of a code is ``code[i] > 0``
({-1, +1} floats, {0, 1} numbers or bools alike), stored little-endian (bit i in word i // w at
position i % w, for ``word_bits`` w of 8, 32 or 64). A code of B bits takes ceil(B / w) words;
the padding bits are 0 in every code, so they never differ and add nothing to a distance.
64-bit words are the default: the distances of 256 queries to 16,384 items of 64 bits took
11 ms as one int64 word, 53 ms as two int32 and 116 ms as eight uint8 words (2 cores).

Usage::

    index = HammingTopK(k=10)
    index.index(item_codes)                      # float [N, B] in {-1, +1} (or packed words)
    distances, indices = index(query_codes)      # int32 [Q, k] each, nearest first
    distances, indices = index.search(query_codes, k=100, allowed=slot_mask)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec_fashion.serialization import register_serializable

WORD_DTYPES = {8: tf.uint8, 32: tf.int32, 64: tf.int64}
_NUMPY_WORDS = {8: "<u1", 32: "<i4", 64: "<i8"}
# Items are scored a chunk at a time: the XOR of Q queries with a chunk is Q * chunk words
# (8 bytes each for 64-bit words), 16 MiB for 256 queries x 8,192 items; above 32 MiB every call
# would map fresh memory (see partitioned_top_k.BLOCK_BYTES).
DEFAULT_CHUNK_SIZE = 8192
# Within a chunk, items are taken in groups of G: the k groups with the nearest minimum are found
# first and only their items are ranked, so TopKV2 runs over chunk / G minima plus k * G
# candidates instead of the whole chunk (a full top-k of the chunk cost more than the XOR and
# popcount together). G is the power of two nearest sqrt(chunk / k), which balances the two, at
# most MAX_GROUP (chunks are multiples of it). Exact: a group holding one of the k nearest items
# has at most k - 1 groups ahead of it (each of those holds a nearer, or an equally near
# lower-index, item, which is then also among the k nearest).
MAX_GROUP = 32


def _check_word_bits(word_bits: int) -> None:
    if word_bits not in WORD_DTYPES:
        raise ValueError(f"`word_bits` must be one of {sorted(WORD_DTYPES)}. "
                         f"Received: word_bits={word_bits!r}")


def n_words(bits: int, word_bits: int = 64) -> int:
    """Words of ``word_bits`` holding a code of ``bits`` bits: ceil(bits / word_bits)."""
    return -(-int(bits) // word_bits)


def pack_codes(codes, word_bits: int = 64) -> tf.Tensor:
    """Packs binary codes into words, in-graph.

    Args:
        codes: [N, B] codes; bit i is ``codes[:, i] > 0`` (floats in {-1, +1} or {0, 1}, ints,
            or bools). B need not be a multiple of ``word_bits``: the code is padded with 0 bits.
        word_bits: 8 (uint8 words), 32 (int32) or 64 (int64, the default).

    Returns:
        [N, ceil(B / word_bits)] words, bit i at position i % word_bits of word i // word_bits;
        equal to ``pack_codes_numpy`` (on little-endian machines, as every TF CPU is).
    """
    _check_word_bits(word_bits)
    codes = tf.convert_to_tensor(codes)
    bits = codes if codes.dtype == tf.bool else codes > 0
    width = codes.shape[-1]
    if width is None:
        raise ValueError(f"`codes` must have a known number of bits (last dimension). "
                         f"Received: shape={codes.shape}")
    padded = n_words(width, word_bits) * word_bits
    bits = tf.pad(tf.cast(bits, tf.int32), [[0, 0], [0, padded - width]])
    # Bytes first (bit j of byte = bit 8 i + j of the code), then bytes into words by Bitcast:
    # sums of distinct powers of two below 256 fit any dtype, so nothing can overflow.
    place_values = tf.constant([1 << j for j in range(8)], tf.int32)
    bytes_ = tf.reduce_sum(tf.reshape(bits, [-1, padded // 8, 8]) * place_values, -1)
    bytes_ = tf.cast(bytes_, tf.uint8)
    if word_bits == 8:
        return bytes_
    return tf.bitcast(tf.reshape(bytes_, [-1, padded // word_bits, word_bits // 8]),
                      WORD_DTYPES[word_bits])


def pack_codes_numpy(codes, word_bits: int = 64) -> np.ndarray:
    """``pack_codes`` in NumPy (``np.packbits``, little bit order), for index building."""
    _check_word_bits(word_bits)
    codes = np.asarray(codes)
    bits = codes if codes.dtype == bool else codes > 0
    padded = n_words(bits.shape[-1], word_bits) * word_bits
    bits = np.pad(bits, [(0, 0), (0, padded - bits.shape[-1])])
    return np.ascontiguousarray(np.packbits(bits, axis=-1, bitorder="little")).view(
        _NUMPY_WORDS[word_bits]).astype(WORD_DTYPES[word_bits].as_numpy_dtype)


def hamming_distances(query_packed, items_packed) -> tf.Tensor:
    """All Hamming distances between packed codes: int32 [Q, N].

    Args:
        query_packed: [Q, W] words from ``pack_codes``.
        items_packed: [N, W] words of the same ``word_bits``.

    For ±1 codes of B bits, ``B - 2 * hamming_distances(q, x)`` is the inner product of the codes.
    Memory is O(Q * N): for large N use ``HammingTopK``, which works a chunk at a time.
    """
    query_packed = tf.convert_to_tensor(query_packed)
    items_packed = tf.convert_to_tensor(items_packed, query_packed.dtype)
    words = query_packed.shape[-1]
    if words is None:  # one [Q, N, W] broadcast
        differing = tf.bitwise.bitwise_xor(query_packed[:, None, :], items_packed[None, :, :])
        return tf.reduce_sum(tf.cast(tf.raw_ops.PopulationCount(x=differing), tf.int32), -1)
    # A [Q, N] XOR per word, summed: for 256-bit codes (4 words) this took 1.4 s per 256 queries
    # x 1M items against 2.5 s for one [Q, N, 4] broadcast reduced over its last axis.
    total = 0
    for word in range(words):
        differing = tf.bitwise.bitwise_xor(query_packed[:, word, None], items_packed[None, :, word])
        total += tf.cast(tf.raw_ops.PopulationCount(x=differing), tf.int32)
    return total


def _check_positive(**values) -> None:
    for label, value in values.items():
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"`{label}` must be a positive integer. Received: {value!r}")


@register_serializable
class HammingTopK(tf.keras.layers.Layer):
    """Exact k nearest items by Hamming distance over packed binary codes, chunked over items.

    The nearest come first; equal distances are ordered by item index (lowest first), so the
    answer is deterministic and equals a stable NumPy argsort of the distances. Rows with fewer
    than k allowed items are padded with index -1 and distance ``bits + 1``. For ±1 codes of B
    bits, ``B - 2 * distance`` is the inner product of the codes (PAN's eq. 4 score, W = I).

    Memory per call is O(Q * chunk_size), whatever N (unless a per-query [Q, N] mask is passed):
    the largest tensor is the XOR of the queries with one chunk, Q * chunk_size words (16 MiB at
    256 x 8,192 with 64-bit words), and at most two chunks are in flight.

    Args:
        k: default number of items returned.
        word_bits: packing word size, 8, 32 or 64 (default; fastest).
        chunk_size: items scored at once (rounded up to a multiple of 32).
        name: layer name.
    """

    def __init__(self, k: int = 10, word_bits: int = 64, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        _check_word_bits(word_bits)
        _check_positive(k=k, chunk_size=chunk_size)
        self.k = int(k)
        self.word_bits = int(word_bits)
        self.chunk_size = int(chunk_size)
        self.bits = None
        self._items = None

    def index(self, item_codes, bits: int | None = None) -> HammingTopK:
        """Stores the item codes; calling it again replaces them.

        Args:
            item_codes: [N, B] codes (bit = code > 0), or, when ``bits`` is given, [N, W] words
                already packed with this layer's ``word_bits``.
            bits: B, the code length: pass it exactly when ``item_codes`` are packed.

        Returns:
            self.
        """
        codes = np.asarray(item_codes)
        if codes.ndim != 2 or len(codes) == 0:
            raise ValueError(f"`item_codes` must be 2D with at least one row. "
                             f"Received: shape={codes.shape}")
        packed_dtype = WORD_DTYPES[self.word_bits].as_numpy_dtype
        if bits is None:
            bits, packed = codes.shape[1], pack_codes_numpy(codes, self.word_bits)
        else:
            if codes.dtype != packed_dtype or codes.shape[1] != n_words(bits, self.word_bits):
                raise ValueError(f"Packed `item_codes` of {bits} bits must be "
                                 f"{np.dtype(packed_dtype).name} [N, "
                                 f"{n_words(bits, self.word_bits)}]. Received: "
                                 f"{codes.dtype} {codes.shape}")
            packed = codes
        self.bits, self.n_items = int(bits), len(packed)
        # The table is padded to whole chunks; rows past n_items score as `bits + 1`.
        self.built_chunk = MAX_GROUP * min(-(-self.chunk_size // MAX_GROUP),
                                           -(-self.n_items // MAX_GROUP))
        n_chunks = -(-self.n_items // self.built_chunk)
        table = np.zeros((n_chunks * self.built_chunk, packed.shape[1]), packed.dtype)
        table[:self.n_items] = packed
        if self._items is None or tuple(self._items.shape) != table.shape:
            self._items = self.add_weight(name="packed_items", shape=table.shape,
                                          dtype=WORD_DTYPES[self.word_bits],
                                          initializer="zeros", trainable=False)
        self._items.assign(table)
        return self

    @property
    def item_table_bytes(self) -> int:
        """Bytes of the packed item table (without the chunk padding)."""
        return self.n_items * n_words(self.bits, self.word_bits) * self.word_bits // 8

    def call(self, query_codes, k: int | None = None):
        """Nearest items of each query: (distances int32 [Q, k], indices int32 [Q, k])."""
        return self.search(query_codes, k)

    def search(self, query_codes, k: int | None = None, allowed=None, packed: bool = False):
        """The k nearest items per query, optionally among allowed items only.

        Args:
            query_codes: [Q, B] codes (bit = code > 0), or [Q, W] packed words with ``packed``.
            k: how many (default the constructor's), a Python int.
            allowed: optional bool [N] (the same items for every query, e.g. one slot's) or
                [Q, N] (per query); items where it is False are never returned.
            packed: whether ``query_codes`` are already packed.

        Returns:
            (distances int32 [Q, k], indices int32 [Q, k] into the indexed items), nearest
            first, ties by lower index; padded with (bits + 1, -1) past the allowed items.
        """
        if self._items is None:
            raise ValueError("The `index` method must be called first to store the item codes.")
        k = self.k if k is None else k
        _check_positive(k=k)
        queries = (tf.convert_to_tensor(query_codes, WORD_DTYPES[self.word_bits]) if packed
                   else tf.convert_to_tensor(query_codes))
        width = self._items.shape[1] if packed else self.bits
        if queries.shape.rank != 2 or queries.shape[1] not in (None, width):
            raise ValueError(f"`query_codes` must be [Q, {width}] "
                             f"({'packed words' if packed else 'bits'}) for items of "
                             f"{self.bits} bits. Received: shape={queries.shape}")
        if not packed:
            queries = pack_codes(queries, self.word_bits)
        chunk, far = self.built_chunk, self.bits + 1
        n_chunks = self._items.shape[0] // chunk
        if allowed is not None:
            allowed = tf.convert_to_tensor(allowed, tf.bool)
            if allowed.shape.rank not in (1, 2) or allowed.shape[-1] not in (None, self.n_items):
                raise ValueError(f"`allowed` must be bool [{self.n_items}] or [Q, "
                                 f"{self.n_items}]. Received: shape={allowed.shape}")
            padding = [[0, 0]] * (allowed.shape.rank - 1) + [[0, n_chunks * chunk - self.n_items]]
            allowed = tf.pad(allowed, padding)
        per_chunk = min(k, chunk)

        def nearest_in_chunk(c):
            start = c * chunk
            distances = hamming_distances(queries, self._items[start:start + chunk])
            keep = tf.range(start, start + chunk) < self.n_items
            if allowed is not None:
                keep = tf.logical_and(keep, allowed[..., start:start + chunk])
            distances = tf.where(keep, distances, far)
            found, positions = _grouped_nearest(distances, chunk, per_chunk)
            return found, positions + start

        # Chunks in index order, each sorted by (distance, index): the final TopKV2 keeps the
        # lower position of equal values, which is then the lower index.
        found, indices = tf.map_fn(nearest_in_chunk, tf.range(n_chunks),
                                   fn_output_signature=(tf.int32, tf.int32),
                                   parallel_iterations=2)
        found = tf.reshape(tf.transpose(found, [1, 0, 2]), [-1, n_chunks * per_chunk])
        indices = tf.reshape(tf.transpose(indices, [1, 0, 2]), [-1, n_chunks * per_chunk])
        returned = min(k, n_chunks * per_chunk)  # fewer only when k > the padded table
        negated, best = tf.math.top_k(-found, returned)
        indices = tf.gather(indices, best, batch_dims=1)
        missing = k - returned
        distances = tf.pad(-negated, [[0, 0], [0, missing]], constant_values=far)
        indices = tf.pad(indices, [[0, 0], [0, missing]], constant_values=-1)
        return distances, tf.where(distances < far, indices, -1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"k": self.k, "word_bits": self.word_bits, "chunk_size": self.chunk_size})
        return config


def group_size(chunk: int, k: int) -> int:
    """Items per group for the top-k of a chunk: the power of two nearest sqrt(chunk / k), in
    [1, MAX_GROUP] (1: a plain TopKV2 over the chunk)."""
    return int(2 ** np.clip(np.round(np.log2(max(chunk / k, 1.0)) / 2), 0, np.log2(MAX_GROUP)))


def _grouped_nearest(distances, chunk: int, k: int):
    """(distances, positions) int32 [Q, k] of the k smallest of [Q, chunk] (chunk a multiple of
    MAX_GROUP), ties by lower position: TopKV2 over the groups' minima, then over the items of
    the best k groups."""
    group = group_size(chunk, k)
    if group == 1:
        negated, positions = tf.math.top_k(-distances, k)
        return -negated, positions
    groups = tf.reshape(distances, [tf.shape(distances)[0], chunk // group, group])
    n_best = min(k, chunk // group)  # k, as group <= sqrt(2 chunk / k); kept for safety
    _, best_groups = tf.math.top_k(-tf.reduce_min(groups, axis=-1), n_best)
    best_groups = tf.sort(best_groups, axis=-1)  # ascending, so position order is index order
    candidates = tf.reshape(tf.gather(groups, best_groups, batch_dims=1), [-1, n_best * group])
    negated, best = tf.math.top_k(-candidates, k)
    positions = tf.gather(best_groups, best // group, batch_dims=1) * group + best % group
    return -negated, positions
