"""GapCNN (DVBPR's Phi on 32x32 images): map sizes and parameter count by hand, the pooled
output's invariance to where an item lies, batch norm in training vs inference, weight decay by
formula, config and Keras save/load round trips, named errors."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.layers.cnn_f import PAPER_WEIGHT_DECAY
from tfrec_fashion.layers.gap_cnn import PRESETS, GapCNN


def _images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype("float32")


def test_preset_sizes_and_hand_computed_parameter_count():
    model = GapCNN.from_preset("gap_cnn", output_dim=16)
    sizes = {layer.name: tuple(layer.output_shape[1:]) for layer in model.layers[1:]}
    assert sizes["conv1"] == (32, 32, 16) and sizes["pool1"] == (16, 16, 16)
    assert sizes["conv2"] == (16, 16, 32) and sizes["pool2"] == (8, 8, 32)
    assert sizes["conv3"] == (8, 8, 64) and "pool3" not in sizes  # no pool after the last block
    assert sizes["gap"] == (64,) and sizes["fc"] == (16,)
    # 3x3 kernels without bias; batch norm: gamma, beta trainable + moving mean, variance.
    convs = 9 * (3 * 16 + 16 * 32 + 32 * 64)
    norms = 4 * (16 + 32 + 64)
    expected = convs + norms + 64 * 16 + 16
    assert model.count_params() == expected == 24_960
    assert len(model.trainable_weights) == 3 + 2 * 3 + 2
    assert model(_images(2, 32), training=False).shape == (2, 16)


def test_output_ignores_where_a_uniform_patch_lies():
    # Pooling over the whole map: a 4x4 coloured patch moved across a plain background (far
    # enough from the borders that no conv's zero padding sees it) gives the same vector.
    model = GapCNN(output_dim=4, image_shape=(32, 32, 3), widths=(4, 8))
    images = np.full((2, 32, 32, 3), 0.8, np.float32)
    images[0, 8:12, 8:12] = [0.9, 0.1, 0.1]
    images[1, 16:20, 12:16] = [0.9, 0.1, 0.1]  # shift (8, 4): even, so the 2x2 pools align
    out = model(images, training=False).numpy()
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6)


def test_batch_norm_uses_batch_statistics_only_in_training():
    model = GapCNN(output_dim=4, image_shape=(8, 8, 3), widths=(4,))
    images = _images(6, 8)
    inference = model(images, training=False).numpy()
    np.testing.assert_array_equal(model(images).numpy(), inference)  # default: inference
    training = model(images, training=True).numpy()
    assert not np.allclose(training, inference)
    # Training normalises each channel over the batch and the map: zero mean after bn1.
    bn = tf.keras.Model(model.input, model.get_layer("bn1").output)
    np.testing.assert_allclose(bn(images, training=True).numpy().mean(axis=(0, 1, 2)), 0.0,
                               atol=1e-5)


def test_weight_decay_is_l2_on_every_kernel():
    model = GapCNN(output_dim=4, weight_decay=0.01)
    kernels = [w for w in model.trainable_weights if "kernel" in w.name]
    assert len(kernels) == 4 and len(model.losses) == 4  # 3 convs + fc
    expected = 0.01 * sum(float(tf.reduce_sum(tf.square(k))) for k in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert GapCNN().weight_decay == PAPER_WEIGHT_DECAY
    assert GapCNN(weight_decay=0.0).losses == []


def test_config_round_trip_and_keras_save_load(tmp_path):
    model = GapCNN.from_preset("gap_cnn", output_dim=8, dropout_rate=0.25)
    config = json.loads(json.dumps(model.get_config()))
    assert GapCNN.from_config(config).get_config() == config
    assert config["widths"] == list(PRESETS["gap_cnn"]["widths"])
    images = _images(4, 32)
    model(images, training=True)  # moves the batch norm statistics away from their start
    model.save(tmp_path / "gap_cnn.keras")
    restored = tf.keras.models.load_model(tmp_path / "gap_cnn.keras")
    assert isinstance(restored, GapCNN)
    np.testing.assert_allclose(restored(images), model(images), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"widths=\(\)"):
        GapCNN(widths=())
    with pytest.raises(ValueError, match="output_dim=0"):
        GapCNN(output_dim=0)
    with pytest.raises(ValueError, match="static sizes"):
        GapCNN(image_shape=(None, None, 3))
    with pytest.raises(ValueError, match="dropout_rate=1.0"):
        GapCNN(dropout_rate=1.0)
    with pytest.raises(ValueError, match="preset='vgg'"):
        GapCNN.from_preset("vgg")
