"""A toy conditional GAN and Phi for the generation head's tests (the head is generic over any
differentiable networks): linear maps small enough to run in milliseconds, smooth enough for the
ascent to move."""

import numpy as np
import tensorflow as tf

from tfrec_fashion.training.serving_parts import (ConditionalGan, DesignSettings,
                                                  GenerationParts, ItemEmbedder)

CATEGORIES = ["bag", "shoes", "top"]
LATENT, SIDE, PHI_SIDE, K = 4, 4, 8, 3  # Phi reads 8 x 8: designs are upscaled (Delta)
SETTINGS = DesignSettings(restarts=8, steps=8, learning_rate=0.1, eta=0.5)
PIXELS = SIDE * SIDE * 3


class ToyGan(tf.Module):
    """G(z, c) = sigmoid(z W + b_c) as a 4 x 4 image; D(x, c) = x . v + d_c; Phi(x) = x P over
    an 8 x 8 image. Smooth, so the ascent moves, and small, so it runs in milliseconds."""

    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        n = len(CATEGORIES)
        self.w = tf.Variable(rng.normal(size=(LATENT, PIXELS)).astype(np.float32))
        self.b = tf.Variable(rng.normal(size=(n, PIXELS)).astype(np.float32) * 0.5)
        self.v = tf.Variable(rng.normal(size=(PIXELS,)).astype(np.float32) * 0.1)
        self.d = tf.Variable(rng.normal(size=(n,)).astype(np.float32))
        self.p = tf.Variable(rng.normal(size=(PHI_SIDE * PHI_SIDE * 3, K)).astype(np.float32)
                             * 0.1)

    @tf.function
    def generate(self, z, category):
        logits = z @ self.w + tf.gather(self.b, category)
        return tf.reshape(tf.sigmoid(logits), [-1, SIDE, SIDE, 3])

    @tf.function
    def discriminate(self, images, category):
        return tf.linalg.matvec(tf.reshape(images, [-1, PIXELS]), self.v) + tf.gather(
            self.d, category)

    @tf.function
    def phi(self, images):
        return tf.reshape(images, [-1, PHI_SIDE * PHI_SIDE * 3]) @ self.p


def toy_parts(settings=SETTINGS, n_users=5):
    gan = ToyGan()
    rng = np.random.default_rng(3)
    item_categories = np.repeat(CATEGORIES, 2)
    images = rng.integers(0, 256, (len(item_categories), SIDE, SIDE, 3), dtype=np.uint8)
    return gan, GenerationParts(
        user_ids=np.array([f"u{row}" for row in range(n_users)]),
        user_vectors=rng.normal(size=(n_users, K)) * 2.0, categories=CATEGORIES,
        gan=ConditionalGan(LATENT, (SIDE, SIDE, 3), gan.generate, gan.discriminate,
                           [gan.w, gan.b, gan.v, gan.d]),
        phi=ItemEmbedder("image", tf.TensorSpec([None, PHI_SIDE, PHI_SIDE, 3], tf.float32,
                                                "image"), gan.phi, [gan.p]),
        settings=settings, item_ids=np.array([f"i{row}" for row in range(len(images))]),
        item_categories=item_categories, item_images=images,
        info={"model": "toy_gan", "dataset": "toy", "dvbpr_run": "runs/toy_dvbpr"})
