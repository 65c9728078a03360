"""The one decorator that registers every public Keras class of the project for serialization."""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf


def register_serializable(cls):
    """Registers ``cls`` under the package name ``tfrec_fashion`` so saved models find it."""
    return tf.keras.utils.register_keras_serializable(package="tfrec_fashion")(cls)
