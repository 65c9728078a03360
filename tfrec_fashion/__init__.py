"""tfrec_fashion: personalised fashion recommendation on TensorFlow Recommenders.

The package is laid out as the pipeline it implements; imports only point downstream:

    data -> layers / losses / metrics -> models -> training / evaluation -> visualisation -> cli

- ``data``: the planted synthetic world, real offline datasets, converters, tf.data pipelines.
- ``layers``, ``losses``, ``metrics``: building blocks shared by every model (one place each).
- ``models``: one file per model family, read top to bottom as its paper's section.
- ``training``: config -> tf.data -> Keras model -> ``model.fit`` in a run directory.
- ``evaluation``: the papers' protocols and tables.
- ``visualisation``: attention maps, design grids, training curves (PNG files).
- ``cli``: the ``tfrec-fashion`` command, the only module that wires every stage together,
  including the separate top-level ``export/`` and ``serving/`` folders.

TensorFlow Recommenders 0.7.7 needs Keras 2, so ``TF_USE_LEGACY_KERAS=1`` is set here, before
TensorFlow is first imported; ``tf.keras`` is then ``tf_keras`` everywhere. Import this package
before ``tensorflow`` (or set the variable yourself) to get the same Keras in your own code.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
