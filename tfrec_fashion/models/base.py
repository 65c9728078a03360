"""The models' common base: ``tfrs.Model`` with its regularisation scaled for the replicas.

TFRS's ``Model.train_step`` adds the layers' regularisation losses (``self.losses``: kernel
regularisers, weight decay) to the task's loss on every replica. Under a distribution strategy
the replicas' gradients are summed, and our tasks already divide their loss by the *global*
batch (``tf.nn.compute_average_loss``), so the task's gradient is the global mean whatever the
replica count, while the regularisation's gradient was counted once per replica: weight decay
grew with the number of replicas (twice as strong on 2 GPUs). ``RecommenderModel`` divides it by
``num_replicas_in_sync`` (``tf.nn.scale_regularization_loss``), so a run's optimisation problem
is the same on 1 or N replicas; with one replica nothing changes.

Models override ``compute_loss`` as with ``tfrs.Model``; a model that applies its gradients in
its own way (PSA-Net's fine-tuned backbone layers) overrides ``apply_gradients``.

Mixed precision: TFRS's step takes the gradient of the bare loss, which under "mixed_float16"
lets small float16 gradients underflow to zero. When the model is compiled with a
``tf.keras.mixed_precision.LossScaleOptimizer`` (Keras' ``compile`` wraps the optimizer of a model
built under "mixed_float16" in one) the step here differentiates the scaled loss and unscales the
gradients (what Keras' own ``minimize`` does for it); the optimizer skips a step
whose gradients overflowed and adjusts the scale. Any other optimizer: the step is unchanged.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_recommenders as tfrs


class RecommenderModel(tfrs.Model):
    """``tfrs.Model`` whose train step scales the regularisation losses for the replicas (see the
    module docstring)."""

    def regularization_loss(self) -> tf.Tensor:
        """This replica's share of the layers' regularisation losses: their sum divided by the
        replicas in sync (the sum itself on one replica), float32 scalar."""
        if not self.losses:
            return tf.constant(0.0)
        total = tf.add_n([tf.reduce_sum(tf.cast(term, tf.float32)) for term in self.losses])
        return tf.nn.scale_regularization_loss(total)

    def apply_gradients(self, gradients: list[tf.Tensor]) -> None:
        """Applies the gradients of ``trainable_variables`` (in their order)."""
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))

    def train_step(self, inputs):
        """TFRS's train step with ``regularization_loss()`` in place of the unscaled sum."""
        loss_scaling = isinstance(self.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = self.regularization_loss()
            total_loss = loss + regularization_loss
            if loss_scaling:
                total_loss = self.optimizer.get_scaled_loss(total_loss)
        gradients = tape.gradient(total_loss, self.trainable_variables)
        if loss_scaling:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.apply_gradients(gradients)
        return self._logged(loss, regularization_loss)

    def test_step(self, inputs):
        """TFRS's test step, its regularisation scaled as in ``train_step``."""
        loss = self.compute_loss(inputs, training=False)
        return self._logged(loss, self.regularization_loss())

    def _logged(self, loss: tf.Tensor, regularization_loss: tf.Tensor) -> dict[str, tf.Tensor]:
        # Keras ``fit`` sums what the replicas return (its "auto" reduction outside TPUs): right
        # for the losses, each replica's share, but a metric's result is already the global
        # value on every replica (its state is synced on read), which MultiWorkerMirrored then
        # counted once per worker. Each replica returns its 1/N of it, so the sum is the value.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        metrics = {metric.name: metric.result() if replicas == 1 else metric.result() / replicas
                   for metric in self.metrics}
        metrics.update(loss=loss, regularization_loss=regularization_loss,
                       total_loss=loss + regularization_loss)
        return metrics
