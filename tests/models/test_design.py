"""Preference maximisation (paper 003, eq. 9-12) on toy networks built here: the ascent raises the
objective, eta trades preference for realism, eager and traced runs agree (and the traced graph
holds only stock ops with GPU kernels), eq. 11's sampling has the softmax distribution (a
chi-square test that rejects the wrong one on the same draws), inversion reconstructs the
generator's own image and tailoring raises the preference from it; bad arguments are named."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfrec_fashion.layers.gap_cnn import GapCNN
from tfrec_fashion.models.design import (Designs, design_objective, initial_latents, invert,
                                         maximise_preference, softmax_sample, tailor)
from tfrec_fashion_export.gpu_kernels import assert_gpu_kernels, gpu_kernel_report
from tfrec_fashion_export.graph_ops import graph_def_nodes, non_stock_ops

L, N_CATEGORIES, SIZE, PHI_SIZE, K = 8, 3, 8, 16, 4
CATEGORY = 1


def toy_networks(seed):
    """A dense generator G(z, c) -> 8x8 RGB, a dense discriminator D(x, c) -> [B, 1] in (0, 1),
    Phi a small GapCNN at 16x16 (so eq. 9's Delta upscales 8 -> 16), and a theta_u."""
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    z, c = tf.keras.Input((L,), name="z"), tf.keras.Input((), dtype=tf.int32, name="category")
    code = layers.Flatten()(layers.Embedding(N_CATEGORIES, 4)(c))
    hidden = layers.Dense(32, "tanh")(layers.Concatenate()([z, code]))
    image = layers.Reshape((SIZE, SIZE, 3))(layers.Dense(SIZE * SIZE * 3, "sigmoid")(hidden))
    generator = tf.keras.Model([z, c], image)
    x, c = tf.keras.Input((SIZE, SIZE, 3)), tf.keras.Input((), dtype=tf.int32)
    code = layers.Flatten()(layers.Embedding(N_CATEGORIES, 4)(c))
    hidden = layers.Dense(16, "tanh")(layers.Concatenate()([layers.Flatten()(x), code]))
    discriminator = tf.keras.Model([x, c], layers.Dense(1, "sigmoid")(hidden))
    phi = GapCNN(output_dim=K, image_shape=(PHI_SIZE, PHI_SIZE, 3), widths=(4, 8))
    theta = 5.0 * tf.random.stateless_normal([K], seed=[seed, 9])
    return generator, discriminator, phi, theta


@pytest.fixture(scope="module")
def networks():
    return toy_networks(0)


def test_initial_latents_are_atanh_of_uniform_and_seeded():
    z_prime = initial_latents(256, L, seed=3)
    z = np.tanh(z_prime.numpy())
    assert z_prime.shape == (256, L) and np.all(np.isfinite(z_prime))
    assert np.abs(z).max() < 1.0 and stats.kstest(z.ravel(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(z_prime, initial_latents(256, L, seed=3))
    assert not np.allclose(z_prime, initial_latents(256, L, seed=4))


def test_objective_is_preference_minus_eta_penalty_on_upscaled_images(networks):
    generator, discriminator, phi, theta = networks
    z_prime = initial_latents(4, L, seed=0)
    objective, preference, penalty = design_objective(generator, discriminator, phi, theta,
                                                      z_prime, CATEGORY, 2.0)
    images = generator([np.tanh(z_prime), np.full(4, CATEGORY)])
    upscaled = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # nearest neighbour, 8 -> 16
    expected_preference = phi(upscaled, training=False).numpy() @ theta.numpy()
    expected_penalty = (discriminator([images, np.full(4, CATEGORY)]).numpy()[:, 0] - 1) ** 2
    np.testing.assert_allclose(preference, expected_preference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(penalty, expected_penalty, rtol=1e-5)
    np.testing.assert_allclose(objective, expected_preference - 2.0 * expected_penalty,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ascent_increases_the_objective_of_every_restart(seed):
    generator, discriminator, phi, theta = toy_networks(seed)
    z_start = initial_latents(8, L, seed)
    start, _, _ = design_objective(generator, discriminator, phi, theta, z_start, CATEGORY, 1.0)
    designs = maximise_preference(generator, discriminator, phi, theta, CATEGORY, z_start,
                                  steps=25, learning_rate=0.05, eta=1.0)
    assert isinstance(designs, Designs) and designs.images.shape == (8, SIZE, SIZE, 3)
    gain = (designs.objective - start).numpy()
    # Every restart climbs, by more than the spread of the starts' objectives.
    assert gain.min() > 0 and gain.mean() > np.std(start), (gain, np.std(start))
    # Designs are consistent: the returned values are the objective of the returned z'.
    again, _, _ = design_objective(generator, discriminator, phi, theta, designs.z_prime,
                                   CATEGORY, 1.0)
    np.testing.assert_allclose(designs.objective, again, rtol=1e-5, atol=1e-6)


def test_larger_eta_lowers_the_realism_penalty(networks):
    generator, discriminator, phi, theta = networks
    z_start = initial_latents(8, L, seed=5)
    free, realistic = (maximise_preference(generator, discriminator, phi, theta, CATEGORY, z_start,
                                           steps=25, learning_rate=0.05, eta=eta)
                       for eta in (0.0, 10.0))
    # From the same starts, every restart ends more realistic with eta = 10 than with eta = 0.
    lowered = (free.penalty - realistic.penalty).numpy()
    assert lowered.min() > 0 and lowered.mean() > 0.005, lowered
    # ... at a cost in preference: eta = 0 maximises the preference alone.
    assert free.preference.numpy().mean() > realistic.preference.numpy().mean()


def test_traced_ascent_matches_eager_and_holds_only_stock_gpu_ops(networks):
    generator, discriminator, phi, theta = networks
    z_start = initial_latents(6, L, seed=2)

    @tf.function(input_signature=[tf.TensorSpec([K], tf.float32), tf.TensorSpec([], tf.int32),
                                  tf.TensorSpec([None, L], tf.float32),
                                  tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)])
    def design(theta, category, z_prime, steps, eta):
        return maximise_preference(generator, discriminator, phi, theta, category, z_prime,
                                   steps, 0.05, eta)

    traced = design(theta, tf.constant(CATEGORY), z_start, tf.constant(20), tf.constant(1.0))
    eager = maximise_preference(generator, discriminator, phi, theta, CATEGORY, z_start, 20,
                                0.05, 1.0)
    for name in Designs._fields:
        np.testing.assert_allclose(getattr(traced, name), getattr(eager, name), rtol=1e-4,
                                   atol=1e-4, err_msg=name)
    # steps is a tensor: one graph serves any number of steps (0 steps = the start).
    start = design(theta, tf.constant(CATEGORY), z_start, tf.constant(0), tf.constant(1.0))
    np.testing.assert_array_equal(start.z_prime, z_start)
    nodes = list(graph_def_nodes(
        design.get_concrete_function().graph.as_graph_def()))
    ops = {node.op for node in nodes}
    assert ops & {"While", "StatelessWhile"}, "the ascent must be a graph loop, not unrolled"
    assert non_stock_ops(ops) == []
    assert_gpu_kernels(gpu_kernel_report(nodes), "the traced ascent")


def test_softmax_sample_draws_distinct_indices_with_softmax_probabilities():
    values = np.array([1.0, 0.0, -0.5, 0.5, 2.0, -1.0])
    objective = tf.constant(values, tf.float32)
    p = np.exp(values) / np.exp(values).sum()
    sample = tf.function(lambda seed: softmax_sample(objective, 3, seed),
                         input_signature=[tf.TensorSpec([], tf.int32)])
    draws = np.stack([sample(tf.constant(seed)).numpy() for seed in range(4000)])
    assert draws.dtype == np.int32 and draws.shape == (4000, 3)
    assert all(len(set(row)) == 3 for row in draws)
    np.testing.assert_array_equal(sample(tf.constant(7)), sample(tf.constant(7)))
    # The first index is eq. 11's draw; the second, the softmax over the rest (Plackett-Luce).
    second = np.array([sum(p[i] * p[j] / (1 - p[i]) for i in range(6) if i != j)
                       for j in range(6)])
    second /= second.sum()  # exact already; rounding only
    wrong = np.exp(0.5 * values) / np.exp(0.5 * values).sum()
    for position, expected in ((0, p), (1, second)):
        counts = np.bincount(draws[:, position], minlength=6)
        assert stats.chisquare(counts, expected * len(draws)).pvalue > 1e-3, (position, counts)
        # The same draws reject a wrong distribution: the test has power.
        assert stats.chisquare(counts, wrong * len(draws)).pvalue < 1e-6


def test_invert_reconstructs_the_generators_own_image_not_a_random_one(networks):
    generator, _, _, _ = networks
    category = tf.constant([2])
    z_known = initial_latents(1, L, seed=123)
    image = generator([tf.tanh(z_known), category])[0]
    z_prime = invert(generator, image, 2, restarts=4, steps=100, learning_rate=0.05, seed=0)
    assert z_prime.shape == (1, L)
    error = float(tf.reduce_mean(tf.abs(generator([tf.tanh(z_prime), category])[0] - image)))
    # Stated bound: mean absolute error 0.005 per pixel channel (of [0, 1] values).
    assert error < 0.005, error
    # Another latent's image is far from it, and a random image is beyond the generator's reach.
    other = generator([tf.tanh(initial_latents(1, L, seed=7)), category])[0]
    assert float(tf.reduce_mean(tf.abs(other - image))) > 10 * error
    noise = tf.random.stateless_uniform([SIZE, SIZE, 3], seed=[1, 1])
    z_noise = invert(generator, noise, 2, restarts=4, steps=100, learning_rate=0.05, seed=0)
    noise_error = float(tf.reduce_mean(tf.abs(generator([tf.tanh(z_noise), category])[0] - noise)))
    assert noise_error > 0.1 > error


def test_tailor_raises_the_preference_from_the_inverted_prototype(networks):
    generator, discriminator, phi, theta = networks
    item = generator([tf.tanh(initial_latents(1, L, seed=11)), tf.constant([0])])[0]
    prototype, tailored = tailor(generator, discriminator, phi, theta, 0, item, steps=15,
                                 learning_rate=0.05, eta=0.0, invert_steps=100)
    assert float(tf.reduce_mean(tf.abs(prototype.images[0] - item))) < 0.005
    assert float(tailored.preference[0]) > float(prototype.preference[0]) + 0.01


def test_bad_arguments_are_named(networks):
    generator, discriminator, phi, theta = networks
    z_start = initial_latents(4, L, seed=0)
    with pytest.raises(ValueError, match="`n` must be at most the number of restarts m=4"):
        softmax_sample(tf.zeros([4]), 5, seed=0)
    with pytest.raises(ValueError, match="`n` must be a positive integer. Received: n=0"):
        softmax_sample(tf.zeros([4]), 0, seed=0)
    with pytest.raises(ValueError, match="`steps` must be a non-negative integer. Received: "
                                         "steps=-1"):
        maximise_preference(generator, discriminator, phi, theta, CATEGORY, z_start, -1, 0.05, 1.0)
    with pytest.raises(ValueError, match=r"`theta` .*\(K=4\). Received: theta with shape \(5,\)"):
        maximise_preference(generator, discriminator, phi, tf.ones([5]), CATEGORY, z_start, 2,
                            0.05, 1.0)
    with pytest.raises(ValueError, match="`eta` must be >= 0. Received: eta=-1"):
        design_objective(generator, discriminator, phi, theta, z_start, CATEGORY, -1.0)
    with pytest.raises(ValueError, match="`m` must be a positive integer. Received: m=0"):
        initial_latents(0, L, seed=0)
    with pytest.raises(ValueError, match="`restarts` must be a positive integer"):
        invert(generator, tf.zeros([SIZE, SIZE, 3]), 0, restarts=0)


def test_design_with_a_conditional_lsgan_traces_to_gpu_ops_and_inverts():
    """The real networks (``models.lsgan``, untrained: calling conventions, D's [B] scores, the
    traced graph) with Phi at twice the GAN's size."""
    from tfrec_fashion.models.lsgan import ConditionalLSGAN

    tf.keras.utils.set_random_seed(0)
    gan = ConditionalLSGAN(n_categories=3, image_size=16, latent_dim=16, generator_filters=8,
                           discriminator_filters=8)
    phi = GapCNN(output_dim=K, image_shape=(32, 32, 3), widths=(4, 8))
    theta = 5.0 * tf.random.stateless_normal([K], seed=[0, 1])

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32),
                                  tf.TensorSpec([], tf.int32)])
    def design(z_prime, steps):
        return maximise_preference(gan.generator, gan.discriminator, phi, theta, 2, z_prime,
                                   steps, 0.05, 1.0)

    z_start = initial_latents(8, 16, seed=0)
    start, designs = design(z_start, tf.constant(0)), design(z_start, tf.constant(20))
    assert designs.images.shape == (8, 16, 16, 3)
    gain = (designs.objective - start.objective).numpy()
    assert gain.min() > 0 and gain.mean() > np.std(start.objective), gain
    nodes = list(graph_def_nodes(design.get_concrete_function().graph.as_graph_def()))
    assert non_stock_ops({node.op for node in nodes}) == []
    assert_gpu_kernels(gpu_kernel_report(nodes), "the ascent through ConditionalLSGAN")

    # Two images at once: tf_keras' CategoryEncoding drops the batch axis of a batch of one.
    pair = gan.generate(tf.tanh(initial_latents(2, 16, seed=5)), tf.constant([2, 2]))
    z_prime = invert(gan.generator, pair[0], 2, restarts=4, steps=100, learning_rate=0.05)
    again = gan.generate(tf.tanh(tf.concat([z_prime, z_prime], 0)), tf.constant([2, 2]))[0]
    error = float(tf.reduce_mean(tf.abs(again - pair[0])))
    # The untrained generator's images differ little (~2e-4 apart); the inversion is far closer.
    assert error < 0.05 * float(tf.reduce_mean(tf.abs(pair[1] - pair[0]))), error


def test_fed_bad_arguments_fail_when_run_naming_them(networks):
    """In a traced function (the serving signature) n and steps are only known when it runs."""
    generator, discriminator, phi, theta = networks
    sample = tf.function(lambda n: softmax_sample(tf.zeros([4]), n, seed=0),
                         input_signature=[tf.TensorSpec([], tf.int32)])
    assert sample(tf.constant(4)).shape == (4,)
    for n in (5, 0):
        with pytest.raises(tf.errors.InvalidArgumentError, match="`n` must be"):
            sample(tf.constant(n))
    ascend = tf.function(
        lambda steps: maximise_preference(generator, discriminator, phi, theta, CATEGORY,
                                          initial_latents(2, L, 0), steps, 0.05, 1.0).objective,
        input_signature=[tf.TensorSpec([], tf.int32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="`steps` must be >= 0"):
        ascend(tf.constant(-1))
