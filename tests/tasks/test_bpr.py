"""The BPR ranking task: the per-triplet loss plus penalty, averaged over the batch, and the share
of triplets ranked right, logged by Keras under the model's metrics."""

import numpy as np
import tensorflow as tf

from tfrec_fashion.tasks.bpr import BprRanking


def test_the_loss_is_the_mean_of_softplus_margins_plus_penalties(assert_close):
    x_ui = np.array([2.0, -1.0, 0.5, 0.0], np.float32)
    x_uj = np.array([1.0, 0.5, 0.5, -3.0], np.float32)
    penalty = np.array([0.1, 0.0, 0.2, 0.3], np.float32)
    task = BprRanking()
    loss = task(tf.constant(x_ui), tf.constant(x_uj), tf.constant(penalty)).numpy()
    expected = np.mean(np.log1p(np.exp(x_uj.astype(np.float64) - x_ui)) + penalty)
    assert_close(loss, expected, ulps=16)
    assert float(task.pairwise_accuracy.result()) == 0.5  # 2.0 > 1.0 and 0.0 > -3.0 only


def test_the_metric_is_the_models_and_is_reset_with_it():
    class Scorer(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.task = BprRanking()

    model = Scorer()
    model.task(tf.constant([1.0]), tf.constant([0.0]))
    assert [metric.name for metric in model.metrics] == ["pairwise_accuracy"]
    model.reset_metrics()
    assert float(model.task.pairwise_accuracy.result()) == 0.0
