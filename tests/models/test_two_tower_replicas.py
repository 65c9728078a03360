"""The two-tower's in-batch softmax under a distribution strategy (``two_tower.global_candidates``),
the tasks' mean over a global batch that splits unevenly (``losses.averaging``) and the metrics
``RecommenderModel`` logs: one step of ``fit`` on one batch of 63 moves the weights the same on
1 and on 2 replicas (two logical CPUs, ``MirroredStrategy``; 32 and 31 rows), because every
replica scores its queries against the whole batch's candidates, not its half, and divides by
the true global batch (VBPR's step differed by 0.8% of its size when each replica divided by
twice its own); and a logged metric (VBPR's pairwise accuracy) is the same number on 1 and 2
replicas. Run in a fresh process:
logical devices must be set before TensorFlow initialises them. The multi-worker runs
themselves are ``tests/training/test_multi_worker.py`` (slow)."""

import textwrap

from tests.models.test_replica_regularisation import run_json_script

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tfrec_fashion
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from tfrec_fashion.models.two_tower import TwoTowerRetrieval
    from tfrec_fashion.models.vbpr import VBPR

    rng = np.random.default_rng(0)
    # 63 rows: the replicas hold 32 and 31 (an epoch's last batch seldom splits evenly).
    pairs = {"user": rng.integers(0, 30, 63).astype(np.int32),
             "item": rng.integers(0, 50, 63).astype(np.int32),
             "item_probability": rng.uniform(0.01, 0.1, 63).astype(np.float32)}
    triplets = {"user": rng.integers(0, 30, 63).astype(np.int32),
                "pos_item": rng.integers(0, 50, 63).astype(np.int32),
                "neg_item": rng.integers(0, 50, 63).astype(np.int32)}

    # One strategy object per device set for both models: a second 2-device strategy would
    # number its collectives from the start again, and clash with the first one's.
    strategies = {1: tf.distribute.MirroredStrategy(["/cpu:0"]),
                  2: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}

    def one_step(replicas, build, batch):
        strategy = strategies[replicas]
        with strategy.scope():
            tf.keras.utils.set_random_seed(0)
            model = build()
            model.compile(tf.keras.optimizers.SGD(0.5))
        start = [v.numpy().copy() for v in model.trainable_variables]
        history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(64), epochs=1,
                            verbose=0, shuffle=False).history
        moved = [v.numpy() - s for v, s in zip(model.trainable_variables, start)]
        return moved, {k: float(v[-1]) for k, v in history.items()}

    two_tower = lambda: TwoTowerRetrieval(30, 50, embedding_dim=4)
    features = rng.normal(size=(50, 6)).astype(np.float32)
    vbpr = lambda: VBPR(30, 50, latent_dim=4, item_features=features)
    found = {}
    for name, build, batch in (("two_tower", two_tower, pairs), ("vbpr", vbpr, triplets)):
        one, one_logs = one_step(1, build, batch)
        two, two_logs = one_step(2, build, batch)
        found[name] = {
            "largest_step": max(float(np.abs(a).max()) for a in one),
            "largest_difference": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
            "one_logs": one_logs, "two_logs": two_logs}
    print(json.dumps(found))
""")


def test_one_and_two_replicas_take_the_same_step_and_log_the_same_numbers():
    found = run_json_script(SCRIPT)
    for name, result in found.items():
        # The same step up to float32 summation order (a few ulps of the step's size). With
        # each replica's own 32 candidates only, the two-tower's step differed by 8% of its
        # size (loss 235.6 against 280.7).
        assert result["largest_difference"] <= 1e-5 * result["largest_step"], (name, result)
        assert result["one_logs"].keys() == result["two_logs"].keys(), (name, result)
        for key, value in result["one_logs"].items():
            assert abs(result["two_logs"][key] - value) <= 1e-5 * max(1.0, abs(value)), (
                name, key, result)
    assert "pairwise_accuracy" in found["vbpr"]["one_logs"]
