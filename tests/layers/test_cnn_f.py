"""CNN-F (DVBPR's Phi): sizes at 224 and 32, the full network's parameter count by hand, weight
decay and LRN by formula, dropout only in training, config and Keras save/load round trips."""

import inspect
import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.layers.cnn_f import (
    CNNF,
    PAPER_WEIGHT_DECAY,
    PRESETS,
    LocalResponseNormalization,
    small_cnn,
)


@pytest.fixture(scope="module")
def full_size():
    return CNNF(output_dim=50)


def _images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype("float32")


def _output_sizes(model):
    return {layer.name: tuple(layer.output_shape[1:]) for layer in model.layers[1:]}


def test_full_size_network_has_the_hand_computed_parameter_count(full_size):
    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + c_out

    def fc(n_in, n_out):
        return n_in * n_out + n_out

    expected = (conv(11, 3, 64) + conv(5, 64, 256) + 3 * conv(3, 256, 256)
                + fc(7 * 7 * 256, 4096) + fc(4096, 4096) + fc(4096, 50))
    assert expected == 70_573_874
    assert full_size.count_params() == expected
    assert sum(int(np.prod(w.shape)) for w in full_size.trainable_weights) == expected


def test_224_input_follows_cnn_f_sizes(full_size):
    sizes = _output_sizes(full_size)
    assert sizes["conv1"] == (54, 54, 64)  # (224 - 11) // 4 + 1, pad 0
    assert sizes["pool1"] == (27, 27, 64)
    assert sizes["conv2"] == (27, 27, 256)
    assert sizes["pool2"] == (14, 14, 256)
    assert sizes["conv5"] == (14, 14, 256)
    assert sizes["pool5"] == (7, 7, 256)  # fc6 reads 12,544 features, as the authors' wd1
    assert sizes["fc6"] == sizes["fc7"] == (4096,)
    assert full_size(_images(2, 224), training=False).shape == (2, 50)


def test_small_inputs_degrade_gracefully():
    model = small_cnn(output_dim=8)
    assert model.image_shape == (32, 32, 3)
    assert _output_sizes(model)["conv1"] == (6, 6, 16)  # still pad 0
    assert [_output_sizes(model)[f"pool{i}"][:2] for i in (1, 2, 5)] == [(3, 3), (2, 2), (1, 1)]
    assert model(_images(3, 32), training=False).shape == (3, 8)

    tiny = small_cnn(output_dim=8, image_shape=(8, 8, 3))  # smaller than conv1's 11x11 kernel
    sizes = _output_sizes(tiny)
    assert sizes["conv1"] == (2, 2, 16)  # "same": ceil(8 / 4)
    assert sizes["pool1"] == (1, 1, 16)
    assert "pool2" not in sizes and "pool5" not in sizes  # pools of 1x1 maps are left out
    assert tiny(_images(2, 8), training=False).shape == (2, 8)


def test_dropout_acts_only_in_training():
    model = small_cnn(output_dim=8, dropout_rate=0.5)
    images = _images(4, 32)
    inference = model(images, training=False).numpy()
    np.testing.assert_array_equal(model(images, training=False).numpy(), inference)
    np.testing.assert_array_equal(model(images).numpy(), inference)  # default: inference
    tf.keras.utils.set_random_seed(0)
    first, second = model(images, training=True).numpy(), model(images, training=True).numpy()
    assert not np.allclose(first, inference)
    assert not np.allclose(first, second)
    no_dropout = small_cnn(output_dim=8, dropout_rate=0.0)
    np.testing.assert_allclose(no_dropout(images, training=True), no_dropout(images), rtol=1e-6)


def test_weight_decay_is_l2_on_every_kernel_and_no_bias():
    model = small_cnn(output_dim=8, weight_decay=0.01)
    kernels = [w for w in model.trainable_weights if "kernel" in w.name]
    assert len(kernels) == 8 and len(model.losses) == 8
    expected = 0.01 * sum(float(tf.reduce_sum(tf.square(k))) for k in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    default = inspect.signature(CNNF).parameters["weight_decay"].default
    assert default == PAPER_WEIGHT_DECAY == pytest.approx(1e-3 / 256)  # 1e-3 * 1/2 * 1/128
    assert small_cnn(weight_decay=0.0).losses == []


def test_local_response_normalization_matches_krizhevsky_formula():
    x = np.random.default_rng(1).uniform(0, 3, (1, 2, 2, 7)).astype("float32")
    layer = LocalResponseNormalization()
    squares = np.pad(x**2, [(0, 0), (0, 0), (0, 0), (2, 2)])
    window = sum(squares[..., d:d + 7] for d in range(5))  # 5 neighbouring channels
    np.testing.assert_allclose(layer(x), x / (2.0 + 1e-4 * window) ** 0.75, rtol=1e-5)

    with_lrn = small_cnn(local_response_normalization=True)
    assert [layer.name for layer in with_lrn.layers if "lrn" in layer.name] == ["lrn1", "lrn2"]
    assert with_lrn.count_params() == small_cnn().count_params()  # LRN has no weights


@pytest.mark.parametrize("lrn", [False, True])
def test_config_round_trip_and_keras_save_load(tmp_path, lrn):
    model = small_cnn(output_dim=8, local_response_normalization=lrn, dropout_rate=0.5)
    config = json.loads(json.dumps(model.get_config()))
    assert CNNF.from_config(config).get_config() == config
    assert CNNF.from_preset("small_cnn", output_dim=8, local_response_normalization=lrn,
                            dropout_rate=0.5).get_config() == config
    assert config["conv_filters"] == list(PRESETS["small_cnn"]["conv_filters"])

    model.save(tmp_path / "cnn_f.keras")
    restored = tf.keras.models.load_model(tmp_path / "cnn_f.keras")
    assert isinstance(restored, CNNF)
    images = _images(2, 32)
    np.testing.assert_allclose(restored(images), model(images), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="conv_filters=\\(64, 256\\)"):
        CNNF(conv_filters=(64, 256))
    with pytest.raises(ValueError, match="fc_units=\\(4096,\\)"):
        CNNF(fc_units=(4096,))
    with pytest.raises(ValueError, match="output_dim=0"):
        CNNF(output_dim=0)
    with pytest.raises(ValueError, match="static sizes"):
        CNNF(image_shape=(None, None, 3))
    with pytest.raises(ValueError, match="dropout_rate=1.0"):
        small_cnn(dropout_rate=1.0)
    with pytest.raises(ValueError, match="preset='vgg'"):
        CNNF.from_preset("vgg")
