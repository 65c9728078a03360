"""The mean over the global batch that the tasks' losses return under any distribution strategy.

``tf.nn.compute_average_loss(per_example)`` divides each replica's sum by its own batch size
times the replicas in sync, which is the global batch only when every replica holds as many
examples. The last batch of an epoch seldom splits evenly (79 triplets on 2 replicas: 40 and
39), and there each replica's examples were weighted by a different divisor, so a multi-replica
run no longer optimised the one-replica loss (its per-epoch losses drifted from it by ~1e-3).
``global_batch_mean`` divides by the true global size, summed across the replicas.
"""

from __future__ import annotations

import tensorflow as tf


def collective_device():
    """The device scope for a cross-replica collective (``all_reduce``, ``all_gather``) called in
    a replica: one replica per worker (MultiWorkerMirrored on CPUs) runs under no device scope,
    and a collective needs its tensors placed on a device ("destinations can not be empty");
    with several local replicas each already runs under its own, and the scope is a no-op."""
    devices = tf.distribute.get_strategy().extended.worker_devices
    return tf.device(devices[0] if len(devices) == 1 else None)


def global_batch_mean(per_example: tf.Tensor) -> tf.Tensor:
    """This replica's share of the mean of ``per_example`` [batch] over the global batch (the
    replicas' shares sum to the mean); with one replica, ``tf.nn.compute_average_loss``."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tf.nn.compute_average_loss(per_example)
    with collective_device():
        size = tf.cast(tf.shape(per_example)[0], tf.float32)
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(size))
    return tf.nn.compute_average_loss(per_example,
                                      global_batch_size=tf.cast(tf.round(total), tf.int32))
