"""``train.precision``: the Keras mixed-precision policy a run's model is built under.

A Keras 2 layer takes its dtype policy from the global policy when it is constructed and keeps
it: under "mixed_float16" or "mixed_bfloat16" its variables stay float32 while its ``call``
computes in float16 / bfloat16. So the harness sets the policy only while the model is built
and compiled (``precision_policy``), and both ``train`` and ``load_run`` do it the same way;
everything else runs under the policy that was in force before, float32 by default: the item
features a recipe computes in ``prepare``, an export's feature backbone, and the next run in the
same process (tests and the demo train many).

float16's narrow exponent range makes small gradients underflow to zero (BPR's are ~1e-7 per
triplet at the models' initial scale): a model built under "mixed_float16" is compiled by Keras
with its optimizer wrapped in a ``LossScaleOptimizer`` (dynamic loss scaling), and
``models.base.RecommenderModel``'s train step scales the loss and unscales the gradients, which
TFRS's own step does not. bfloat16 has float32's exponent range and needs none.

The models that support a mixed policy (their config declares ``MIXED_PRECISION``: BPR-MF and
the VBPR family) keep their losses and metrics in float32 and return float32 vectors and scores;
the others are refused when the config is read (``run_config.check_precision``), and every
saved serving function casts its outputs to float32 (``serving_parts``).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Sets the global Keras policy to ``precision`` ("float32", "mixed_float16",
    "mixed_bfloat16") inside the block and restores the previous one after it, even on error."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)

