"""The conditional LSGAN (paper 003, III-C): shapes and range, the conditioning learnt in a few
hundred steps, the config round trip, and a killed ``fit`` resumed with both optimizers' state."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.models.lsgan import ConditionalLSGAN

TINY = {"latent_dim": 8, "generator_filters": 8, "discriminator_filters": 8}


def toy_batches(n: int = 64, size: int = 16, batch_size: int = 32, seed: int = 0):
    """Two categories of 16x16 images: 0 a bright square on black, 1 a dark-grey full frame."""
    rng = np.random.default_rng(seed)
    category = np.arange(n) % 2
    images = np.zeros((n, size, size, 3), np.float32)
    images[category == 0, 4:12, 4:12] = 0.9
    images[category == 1] = 0.3
    images = np.clip(images + rng.normal(0, 0.03, images.shape), 0, 1).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices({"image": images,
                                               "category": category.astype(np.int32)})
    return images, category, data.shuffle(n, seed=seed).repeat().batch(batch_size)


def compiled(seed: int = 0, **overrides) -> ConditionalLSGAN:
    tf.keras.utils.set_random_seed(seed)
    model = ConditionalLSGAN(**{"n_categories": 2, "image_size": 16, **TINY, **overrides})
    model.compile(tf.keras.optimizers.Adam(2e-3))
    return model


@pytest.mark.parametrize("size", [32, 64])
def test_generator_gives_images_in_0_1_and_discriminator_one_score_each(size):
    model = ConditionalLSGAN(n_categories=5, image_size=size, generator_filters=4,
                             discriminator_filters=4, latent_dim=100)
    z = model.sample_latent(6, seed=1)
    assert z.shape == (6, 100) and float(tf.reduce_min(z)) >= -1 and float(tf.reduce_max(z)) <= 1
    np.testing.assert_array_equal(z.numpy(), model.sample_latent(6, seed=1).numpy())
    # Large z pushes the tanh to saturation: still inside [0, 1].
    images = model.generate(z * 50.0, tf.constant([0, 1, 2, 3, 4, 0]))
    assert images.shape == (6, size, size, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0
    scores = model.discriminate(images, tf.constant([0, 1, 2, 3, 4, 0]))
    assert scores.shape == (6,)
    # The category changes what G draws and how D scores (it is an input of both).
    same_z = tf.repeat(z[:1], 2, axis=0)
    drawn = model.generate(same_z, tf.constant([0, 3])).numpy()
    assert np.abs(drawn[0] - drawn[1]).max() > 1e-6
    scored = model.discriminate(tf.repeat(images[:1], 2, axis=0), tf.constant([0, 3])).numpy()
    assert abs(scored[0] - scored[1]) > 1e-6


def test_a_batch_of_one_is_the_same_image_as_in_a_larger_batch():
    # Tailoring generates its one inverted prototype alone (a batch of one).
    model = ConditionalLSGAN(n_categories=3, image_size=16, **TINY)
    z, category = model.sample_latent(2, seed=4), tf.constant([2, 1])
    together = model.generate(z, category).numpy()
    alone = model.generate(z[:1], category[:1]).numpy()
    assert alone.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-5, atol=1e-6)
    score = model.discriminate(alone, category[:1]).numpy()
    assert score.shape == (1,) and np.isfinite(score).all()


def test_a_grey_generator_draws_the_same_pixels_on_every_channel():
    model = ConditionalLSGAN(n_categories=2, image_size=16, grey=True, **TINY)
    images = model.generate(model.sample_latent(3, seed=0), tf.constant([0, 1, 1])).numpy()
    assert images.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 1])
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    assert images.std() > 0  # not a constant image either
    colour = ConditionalLSGAN(n_categories=2, image_size=16, **TINY)
    drawn = colour.generate(colour.sample_latent(3, seed=0), tf.constant([0, 1, 1])).numpy()
    assert np.abs(drawn[..., 0] - drawn[..., 1]).max() > 0


def test_bad_arguments_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="`image_size` must be a power of two >= 8.*image_size=48"):
        ConditionalLSGAN(n_categories=2, image_size=48)
    with pytest.raises(ValueError, match="`n_categories` must be a positive integer.*=0"):
        ConditionalLSGAN(n_categories=0)
    with pytest.raises(ValueError, match="`beta_1` must be in \\[0, 1\\).*beta_1=1.0"):
        ConditionalLSGAN(n_categories=2, beta_1=1.0)


def test_compile_gives_each_player_its_own_adam_with_the_gan_beta_1():
    model = ConditionalLSGAN(n_categories=2, image_size=16, **TINY)
    model.compile(tf.keras.optimizers.Adam(3e-4))
    g, d = model.optimizer, model.discriminator_optimizer
    assert g is not d and isinstance(d, tf.keras.optimizers.Adam)
    for optimizer in (g, d):
        config = optimizer.get_config()
        assert config["beta_1"] == 0.5 and config["learning_rate"] == pytest.approx(3e-4)


def test_a_few_hundred_steps_learn_the_conditional_images():
    images, category, batches = toy_batches()
    model = compiled()
    z = model.sample_latent(64, seed=3)
    labels = tf.constant(np.arange(64) % 2, tf.int32)
    before = model.generate(z, labels).numpy()
    history = model.fit(batches, epochs=6, steps_per_epoch=50, verbose=0).history
    # D learnt to tell the toy images from G's first attempts: its loss fell from ~1 (it starts
    # near 0 on both, so the real term is ~1) and its epoch means part real from fake.
    assert history["d_loss"][0] < 0.9 and history["d_real"][0] > history["d_fake"][0] + 0.2
    after = model.generate(z, labels).numpy()
    square = np.zeros((16, 16), bool)
    square[4:12, 4:12] = True

    def centre_minus_border(drawn):
        grey = drawn.mean(axis=-1)
        return grey[:, square].mean(axis=1) - grey[:, ~square].mean(axis=1)

    # Category 0 became a bright square on black, category 1 a flat frame (the data: 0.9 / 0.0
    # and 0.3 / 0.3); the untrained G drew neither.
    zero, one = after[0::2], after[1::2]
    assert centre_minus_border(zero).mean() > 0.5
    assert abs(centre_minus_border(one).mean()) < 0.15
    assert abs(one.mean() - 0.3) < 0.1
    assert centre_minus_border(before[0::2]).mean() < 0.2
    # The real images still score higher than G's with D, as eq. 7 trains it.
    real = model.discriminate(images, category.astype(np.int32)).numpy()
    assert real.mean() > model.discriminate(after, labels).numpy().mean()


def test_get_config_round_trip_rebuilds_the_same_networks():
    model = ConditionalLSGAN(n_categories=3, image_size=32, latent_dim=12, generator_filters=6,
                             discriminator_filters=5, beta_1=0.3, grey=True, name="gan")
    config = model.get_config()
    rebuilt = ConditionalLSGAN.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    rebuilt.set_weights(model.get_weights())
    z, c = model.sample_latent(4, seed=0), tf.constant([0, 1, 2, 0])
    np.testing.assert_array_equal(rebuilt.generate(z, c).numpy(), model.generate(z, c).numpy())
    images = model.generate(z, c)
    np.testing.assert_array_equal(rebuilt.discriminate(images, c).numpy(),
                                  model.discriminate(images, c).numpy())
    assert tf.keras.utils.get_registered_object("tfrec_fashion>ConditionalLSGAN") \
        is ConditionalLSGAN


class _Killed(Exception):
    pass


class _KillAfter(tf.keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Killed


class _AtStart(tf.keras.callbacks.Callback):
    """Records the model's weights when fit begins (after BackupAndRestore restored them)."""

    def on_train_begin(self, logs=None):
        self.weights = [w.copy() for w in self.model.get_weights()]


def test_a_killed_fit_resumes_with_the_weights_and_both_optimizers_state(tmp_path):
    _, _, batches = toy_batches()
    steps = 3
    model = compiled()
    with pytest.raises(_Killed):
        model.fit(batches, epochs=4, steps_per_epoch=steps, verbose=0,
                  callbacks=[tf.keras.callbacks.BackupAndRestore(str(tmp_path)), _KillAfter(1)])
    killed_weights = model.get_weights()
    assert int(model.optimizer.iterations) == int(model.discriminator_optimizer.iterations) \
        == 2 * steps

    resumed, at_start = compiled(seed=5), _AtStart()  # other initial weights
    history = resumed.fit(batches, epochs=4, steps_per_epoch=steps, verbose=0,
                          callbacks=[tf.keras.callbacks.BackupAndRestore(str(tmp_path)),
                                     at_start]).history
    for restored, saved in zip(at_start.weights, killed_weights):
        np.testing.assert_array_equal(restored, saved)
    assert len(history["d_loss"]) == 2  # epochs 3 and 4 only
    # Both optimizers carried on from their checkpointed step counts (and moments).
    assert int(resumed.optimizer.iterations) == 4 * steps
    assert int(resumed.discriminator_optimizer.iterations) == 4 * steps
