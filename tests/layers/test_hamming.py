"""Hamming ranking against NumPy: packing (bits not a multiple of the word too), distances equal to
``(a != b).sum(-1)``, the inner-product identity of ±1 codes, top-k equal to a stable argsort
(ties by index) whatever the chunking, masks and padding, and a SavedModel round trip whose graph
uses only stock ops."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.layers.hamming import (HammingTopK, group_size, hamming_distances, n_words,
                                          pack_codes, pack_codes_numpy)
from tfrec_fashion_export.graph_ops import assert_stock_ops

WORD_BITS = [8, 32, 64]


def random_codes(n, bits, seed):
    """±1 float32 codes [n, bits]."""
    return np.random.default_rng(seed).choice([-1.0, 1.0], (n, bits)).astype(np.float32)


def numpy_top_k(query_codes, item_codes, k, allowed=None):
    """(distances, indices) of the k nearest, ties by lower index (a stable argsort)."""
    distances = (query_codes[:, None, :] != item_codes[None, :, :]).sum(-1)
    if allowed is not None:
        distances = np.where(allowed, distances, np.iinfo(np.int32).max)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


@pytest.mark.parametrize("word_bits", WORD_BITS)
@pytest.mark.parametrize("bits", [1, 7, 8, 13, 32, 64, 100])
def test_packing_matches_numpy_and_unpacks_to_the_signs(word_bits, bits):
    codes = random_codes(20, bits, seed=bits)
    packed = pack_codes(codes, word_bits).numpy()
    assert packed.shape == (20, n_words(bits, word_bits))
    np.testing.assert_array_equal(packed, pack_codes_numpy(codes, word_bits))
    unpacked = np.unpackbits(packed.view(np.uint8), axis=1, bitorder="little")
    np.testing.assert_array_equal(unpacked[:, :bits], codes > 0)
    assert not unpacked[:, bits:].any()  # padding bits are 0
    # {0, 1} numbers and bools pack like the ±1 codes they stand for.
    np.testing.assert_array_equal(pack_codes((codes > 0).astype(np.float32), word_bits), packed)
    np.testing.assert_array_equal(pack_codes(codes > 0, word_bits), packed)


def test_a_hand_packed_code_and_its_distances():
    codes = np.array([[1, -1, -1, 1, -1, -1, -1, -1, 1],    # bits 0, 3, 8: bytes 9, 1
                      [-1, -1, -1, -1, -1, -1, -1, -1, -1]], np.float32)
    np.testing.assert_array_equal(pack_codes(codes, 8), [[9, 1], [0, 0]])
    np.testing.assert_array_equal(pack_codes(codes, 32), [[265], [0]])
    packed = pack_codes(codes, 64)
    np.testing.assert_array_equal(hamming_distances(packed, packed), [[0, 3], [3, 0]])


@pytest.mark.parametrize("word_bits", WORD_BITS)
@pytest.mark.parametrize("bits", [5, 13, 64, 100, 130])
def test_distances_equal_numpy_and_give_the_inner_product_of_the_codes(word_bits, bits):
    queries, items = random_codes(9, bits, seed=1), random_codes(40, bits, seed=2)
    distances = hamming_distances(pack_codes(queries, word_bits), pack_codes(items, word_bits))
    assert distances.dtype == tf.int32
    np.testing.assert_array_equal(distances, (queries[:, None] != items[None]).sum(-1))
    # For ±1 codes of B bits: <q, x> = B - 2 hamming(q, x), exactly (integers).
    np.testing.assert_array_equal(bits - 2 * distances.numpy(), queries @ items.T)
    # A graph that does not know the number of words takes one [Q, N, W] broadcast instead.
    words = tf.TensorSpec([None, None], pack_codes(queries, word_bits).dtype)
    unknown_words = tf.function(hamming_distances, input_signature=[words, words])
    np.testing.assert_array_equal(
        unknown_words(pack_codes(queries, word_bits), pack_codes(items, word_bits)), distances)


# (chunk_size, k, items per group of the chunk's grouped top-k): every group size is exercised.
@pytest.mark.parametrize("chunk_size, k, group", [(32, 25, 1), (100, 25, 2), (1024, 25, 8),
                                                  (100_000, 25, 8), (100_000, 3, 32)])
def test_top_k_is_numpys_stable_argsort_whatever_the_chunking(chunk_size, k, group):
    # 10 bits for 3,000 items: hundreds of items share each distance, so ties decide the answer.
    queries, items = random_codes(12, 10, seed=3), random_codes(3_000, 10, seed=4)
    want_distances, want_indices = numpy_top_k(queries, items, k=k)
    index = HammingTopK(k=k, chunk_size=chunk_size).index(items)
    assert group_size(index.built_chunk, k) == group
    distances, indices = index(queries)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(distances, want_distances)


def test_many_chunks_and_one_chunk_give_the_same_answer_on_longer_codes():
    queries, items = random_codes(30, 70, seed=5), random_codes(5_000, 70, seed=6)
    answers = [HammingTopK(k=50, chunk_size=size, word_bits=word_bits).index(items)(queries)
               for size in (64, 10_000) for word_bits in (32, 64)]
    for distances, indices in answers[1:]:
        np.testing.assert_array_equal(indices, answers[0][1])
        np.testing.assert_array_equal(distances, answers[0][0])
    np.testing.assert_array_equal(answers[0][1], numpy_top_k(queries, items, 50)[1])


def test_item_and_per_query_masks_and_padding_past_the_allowed_items():
    queries, items = random_codes(6, 16, seed=7), random_codes(500, 16, seed=8)
    slot = np.random.default_rng(0).random(500) < 0.3  # one slot's items
    index = HammingTopK(k=8, chunk_size=64).index(items)
    distances, indices = index.search(queries, allowed=slot)
    np.testing.assert_array_equal(indices, numpy_top_k(queries, items, 8, slot[None])[1])
    per_query = np.random.default_rng(1).random((6, 500)) < 0.5
    distances, indices = index.search(queries, k=20, allowed=per_query)
    want_distances, want_indices = numpy_top_k(queries, items, 20, per_query)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(distances, want_distances)
    # Three allowed items, k = 5: two padding slots of (bits + 1, -1).
    few = np.zeros(500, bool)
    few[[3, 250, 499]] = True
    distances, indices = index.search(queries, k=5, allowed=few)
    assert (np.sort(indices.numpy()[:, :3], axis=1) == [3, 250, 499]).all()
    assert (indices.numpy()[:, 3:] == -1).all() and (distances.numpy()[:, 3:] == 17).all()


def test_k_beyond_the_catalogue_is_padded_and_packed_inputs_are_accepted():
    queries, items = random_codes(3, 12, seed=9), random_codes(7, 12, seed=10)
    index = HammingTopK(k=10, word_bits=32).index(pack_codes_numpy(items, 32), bits=12)
    distances, indices = index.search(pack_codes_numpy(queries, 32), packed=True)
    want_distances, want_indices = numpy_top_k(queries, items, 7)
    np.testing.assert_array_equal(indices.numpy()[:, :7], want_indices)
    np.testing.assert_array_equal(distances.numpy()[:, :7], want_distances)
    assert (indices.numpy()[:, 7:] == -1).all() and (distances.numpy()[:, 7:] == 13).all()
    assert index.item_table_bytes == 7 * 4


def test_a_saved_model_answers_like_the_layer_with_stock_ops_only(tmp_path):
    queries, items = random_codes(20, 48, seed=11), random_codes(2_000, 48, seed=12)
    allowed = np.arange(2_000) % 3 != 0
    index = HammingTopK(k=10, chunk_size=256).index(items)
    module = tf.Module()
    module.index = index
    module.search = tf.function(
        lambda codes, allowed: index.search(codes, allowed=allowed),
        input_signature=[tf.TensorSpec([None, 48], tf.float32), tf.TensorSpec([2_000], tf.bool)])
    tf.saved_model.save(module, str(tmp_path / "hamming"))
    report = assert_stock_ops(tmp_path / "hamming")
    assert {"BitwiseXor", "PopulationCount", "TopKV2", "Bitcast"} <= set(report["ops"])
    loaded = tf.saved_model.load(str(tmp_path / "hamming"))
    got = loaded.search(tf.constant(queries), tf.constant(allowed))
    want = index.search(queries, allowed=allowed)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(want[1], numpy_top_k(queries, items, 10, allowed[None])[1])


def test_get_config_round_trips_and_bad_arguments_are_refused():
    layer = HammingTopK(k=3, word_bits=32, chunk_size=512, name="codes")
    config = layer.get_config()
    clone = HammingTopK.from_config(config)
    assert clone.get_config() == config
    assert (clone.k, clone.word_bits, clone.chunk_size) == (3, 32, 512)
    assert tf.keras.utils.get_registered_object("tfrec_fashion>HammingTopK") is HammingTopK
    with pytest.raises(ValueError, match="word_bits.*Received: word_bits=16"):
        HammingTopK(word_bits=16)
    with pytest.raises(ValueError, match="k.*Received: 0"):
        HammingTopK(k=0)
    with pytest.raises(ValueError, match="index"):
        HammingTopK().search(random_codes(1, 8, seed=0))
    with pytest.raises(ValueError, match="Packed"):
        HammingTopK().index(np.zeros((4, 3), np.int64), bits=64)
    with pytest.raises(ValueError, match="2D"):
        HammingTopK().index(np.zeros(4, np.float32))
    index = HammingTopK().index(random_codes(50, 16, seed=0))
    with pytest.raises(ValueError, match=r"\[Q, 16\].*Received: shape=\(2, 12\)"):
        index.search(random_codes(2, 12, seed=0))
    with pytest.raises(ValueError, match=r"allowed.*\[50\].*Received: shape=\(49,\)"):
        index.search(random_codes(2, 16, seed=0), allowed=np.ones(49, bool))
