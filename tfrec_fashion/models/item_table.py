"""A per-item data table that a model looks items up in: data, not a parameter.

Models whose training batches carry item indices only (DVBPR's item images, VBPR's item features
f_i) keep the table in a ``tf.Variable``: traced training functions read it without baking it
into the graph as a constant, and see the new values when it is replaced. ``ItemTable`` is a plain
Python object, not a ``tf.Module``, so Keras' attribute tracking does not see the variable inside
it: the table is in neither ``model.variables``, checkpoints (``save_weights``, BackupAndRestore)
nor ``get_config``, and a model rebuilt from its config gets the table set again by its caller.
"""

from __future__ import annotations

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf


class ItemTable:
    """Holds one item table (e.g. float32 [n_items, F]) out of Keras' tracking.

    Args:
        name: the variable's name and the owner's constructor argument that sets it, e.g.
            "item_features"; error messages say it with spaces ("item features").
        setter: the owner's method that sets it, e.g. "set_item_features".

    Example:

        self._item_features = ItemTable("item_features", setter="set_item_features")
        self._item_features.set(features, (n_items, n_features),  # in the setter
                                self.distribute_strategy)
        table = self._item_features.get(self.name)                      # where it is read
    """

    def __init__(self, name: str, setter: str):
        self.name = name
        self.setter = setter
        self._variable: tf.Variable | None = None

    @property
    def is_set(self) -> bool:
        return self._variable is not None

    def set(self, values, shape, strategy: tf.distribute.Strategy, note: str = "") -> None:
        """Sets the table to ``values`` as float32 after checking they have ``shape``;
        ``ValueError`` "<name> must be [<shape>]<note>. Received: shape=..." otherwise."""
        values = tf.convert_to_tensor(values, tf.float32)
        shape = tuple(int(size) for size in shape)
        if tuple(values.shape) != shape:
            raise ValueError(f"{self.name} must be {list(shape)}{note}. Received: "
                             f"shape={tuple(values.shape)}")
        self.assign(values, strategy)

    def assign(self, values: tf.Tensor, strategy: tf.distribute.Strategy) -> None:
        """Sets the table to ``values`` (already checked by the owner).

        The first call creates the variable under ``strategy``'s scope (the owner's
        ``distribute_strategy``, so replicas hold it like the weights); later calls replace the
        values in place, so functions already traced keep reading the same variable.
        """
        if self._variable is None:
            with strategy.scope():
                self._variable = tf.Variable(values, trainable=False, name=self.name)
        else:
            self._variable.assign(values)

    def get(self, owner: str) -> tf.Variable:
        """Returns the variable; raises ``ValueError`` naming ``owner`` when it was never set."""
        if self._variable is None:
            raise ValueError(f"{owner} has no {self.name.replace('_', ' ')}: pass {self.name}= "
                             f"at construction or call {self.setter} (the table is not saved "
                             "with the weights)")
        return self._variable
