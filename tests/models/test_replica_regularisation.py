"""Regularisation under a distribution strategy (``models.base.RecommenderModel``): one step of
``fit`` on one batch gives the same weights on 1 and on 2 replicas (two logical CPUs,
``MirroredStrategy``), with a strong L2 so that counting it once per replica would show; and each
replica's ``regularization_loss()`` is its share, the total over the replicas. Run in a fresh
process: logical devices must be set before TensorFlow initialises them."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tfrec_fashion
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from tfrec_fashion.models.pair_compatibility import PairCompatibility

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 6)).astype(np.float32)
    batch = {"item_a": rng.integers(0, 40, 64).astype(np.int32),
             "item_b": rng.integers(0, 40, 64).astype(np.int32),
             "label": rng.choice([-1.0, 1.0], 64).astype(np.float32)}

    def one_step(devices):
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            tf.keras.utils.set_random_seed(0)
            model = PairCompatibility(40, 6, embedding_dim=4, hidden_dim=8, l2=0.5,
                                      item_features=features)
            model.compile(tf.keras.optimizers.SGD(0.5))
        start = [v.numpy().copy() for v in model.trainable_variables]
        penalty = float(tf.add_n([tf.reduce_sum(t) for t in model.losses]))
        shares = strategy.run(model.regularization_loss)
        total = float(strategy.reduce(tf.distribute.ReduceOp.SUM, shares, axis=None))
        model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(64), epochs=1, verbose=0,
                  shuffle=False)
        moved = [v.numpy() - s for v, s in zip(model.trainable_variables, start)]
        return moved, total, penalty

    one, one_total, penalty = one_step(["/cpu:0"])
    two, two_total, _ = one_step(["/cpu:0", "/cpu:1"])
    print(json.dumps({
        "largest_step": max(float(np.abs(a).max()) for a in one),
        "largest_difference": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
        "one_total": one_total, "two_total": two_total, "penalty": penalty}))
""")


def run_json_script(script: str) -> dict:
    """Runs ``script`` in a fresh CPU-only Python process (logical devices can be set there
    before TensorFlow initialises them) and returns the JSON of its last stdout line."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_one_and_two_replicas_take_the_same_step():
    found = run_json_script(SCRIPT)
    # The penalty is large (L2 0.5 on every kernel): counted once per replica, the 2-replica
    # step would differ from the 1-replica one by about the lr times the penalty's gradient.
    assert found["penalty"] > 1.0, found
    for total in (found["one_total"], found["two_total"]):
        assert abs(total - found["penalty"]) <= 1e-5 * found["penalty"], found
    # The same step up to float32 summation order (a few ulps of the step's size).
    assert found["largest_difference"] <= 1e-5 * found["largest_step"], found
