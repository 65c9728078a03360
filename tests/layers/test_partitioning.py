"""The k-means behind ``PartitionedTopK`` at a size where its TensorFlow assignment runs: exactly
NumPy's nearest centroid, seeded, and the same partitions as the NumPy k-means it replaced."""

import numpy as np

from tfrec_fashion.layers import partitioning


def test_tf_nearest_centroid_is_numpys():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5_000, 16), dtype=np.float32)  # not a multiple of TF_BLOCK
    centroids = rng.standard_normal((900, 16), dtype=np.float32)
    half_norms = 0.5 * np.einsum("pd,pd->p", centroids, centroids)
    assert len(vectors) * len(centroids) >= partitioning.TF_FROM_SCORES
    np.testing.assert_array_equal(partitioning.nearest_centroid(vectors, centroids),
                                  np.argmax(vectors @ centroids.T - half_norms, axis=1))


def test_same_seed_same_partitions_as_the_numpy_kmeans(monkeypatch):
    rng = np.random.default_rng(8)
    centres = rng.standard_normal((200, 16), dtype=np.float32)
    items = centres[rng.integers(0, 200, 30_000)] + 0.6 * rng.standard_normal(
        (30_000, 16), dtype=np.float32)
    assert len(items) * 150 >= partitioning.TF_FROM_SCORES  # the TensorFlow path runs
    first = partitioning.partition(items, 150, seed=3)
    second = partitioning.partition(items, 150, seed=3)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(partitioning, "TF_FROM_SCORES", 2**62)
    before = partitioning.partition(items, 150, seed=3)
    # Both exact and drawing the same random numbers: the same partitions, but for rows whose
    # two nearest centroids tie to float rounding (none measured here).
    assert (first[2] == before[2]).mean() >= 0.999
    np.testing.assert_allclose(first[0], before[0], atol=1e-3)
