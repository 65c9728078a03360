"""The triplet pair task (PSA-Net's ablation of section 7.2.2): the hinge of the partner's
distance against the third image's, on the vote's side, averaged over the batch, and the share
of triplets on that side."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.tasks.pairs import TripletPairs


def test_the_triplet_loss_is_the_mean_hinge_on_the_votes_side(assert_close):
    task = TripletPairs(margin=0.5)
    d_ab = tf.constant([0.25, 1.0, 2.0, 0.5])
    d_ac = tf.constant([1.0, 0.5, 0.75, 2.0])
    labels = tf.constant([1, 1, -1, -1])
    # +1: max(0, d_ab - d_ac + m): 0.25 - 1.0 + 0.5 -> 0; 1.0 - 0.5 + 0.5 = 1.0
    # -1: max(0, d_ac - d_ab + m): 0.75 - 2.0 + 0.5 -> 0; 2.0 - 0.5 + 0.5 = 2.0
    assert_close(task(d_ab, d_ac, labels).numpy(), np.mean([0.0, 1.0, 0.0, 2.0]), ulps=4)
    # On the vote's side: the 1st (+1, nearer) and 3rd (-1, farther); not the 2nd and 4th.
    assert task.accuracy.result().numpy() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="margin must be positive"):
        TripletPairs(margin=-1.0)
