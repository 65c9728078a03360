"""The generation head's module: new images a customer would like, designed inside the graph
(``contract.GENERATION``: ``design`` = serving_default; paper 003, III-D).

``GenerationParts`` (``tfrec_fashion.training.serving_parts``) carry a conditional GAN's
generator G(z, c) and discriminator D(x, c), DVBPR's image path Phi with its customers'
theta_u, and the ascent's settings. For each request row the signature runs the preference
maximisation of ``tfrec_fashion.models.design`` (one implementation, shared with the
evaluation and the command line): m starting points z' drawn from the row's seed, a fixed
number of Adam steps on z' maximising theta_u . Phi(G(tanh z', c)) - eta (D(G(tanh z', c), c)
- 1)^2 (eq. 9-10) in a ``tf.while_loop`` with a gradient tape, then n of the m restarts
sampled with probability proportional to exp(objective) (eq. 11). Stock ops only, so stock TF
Serving runs it too.

Bad requests fail inside the graph with ``InvalidArgumentError`` (INVALID_ARGUMENT when
served), each naming the problem: an unknown category, n outside [1, m] or different over the
rows, a negative or non-finite eta, category / n / seed / eta rows that are neither 1 nor the
customers'. An unknown customer is designed for with the mean theta_u (``cold_start``). A
model with fewer restarts than the contract's default n (8; a toy) refuses requests that leave
n out, naming its range.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.models.design import initial_latents, maximise_preference, softmax_sample
from tfrec_fashion.training.serving_parts import GenerationParts
from tfrec_fashion_export.module import (broadcast_rows, head_signatures, lookup_table,
                                         vectors_or_default)
from tfrec_fashion_serving.contract import DESIGN, GENERATION


class DesignModule(tf.Module):
    """The SavedModel's root for the generation head.

    Args:
        parts: what the trained GAN and its DVBPR run contribute (``GenerationParts``); the
            ascent's restarts, steps and learning rate are ``parts.settings``.
    """

    def __init__(self, parts: GenerationParts):
        super().__init__(name="generation")
        settings = parts.settings
        self.restarts, self.steps = settings.restarts, settings.steps
        self.learning_rate = settings.learning_rate
        self.latent_dim = parts.gan.latent_dim
        self.image_shape = parts.image_shape
        self.category_names = ", ".join(parts.categories)
        self.user_table = lookup_table(parts.user_ids, "user_ids")
        self.category_table = lookup_table(np.array(parts.categories), "categories")
        self.user_vectors = tf.Variable(parts.user_vectors, trainable=False, name="theta_u")
        self.cold_start_vector = tf.Variable(parts.cold_start_vector, trainable=False,
                                             name="cold_start_theta")
        self.generate, self.discriminate = parts.gan.generate, parts.gan.discriminate
        self.phi = parts.phi.embed
        self.phi_size = tuple(parts.phi.input_spec.shape[1:3])  # Delta's target (H, W)
        self.gan_variables = list(parts.gan.variables)  # kept by the SavedModel
        self.phi_variables = list(parts.phi.variables)

    def _checked(self, user_id, category, n, seed, eta):
        """The request's rows, checked: (theta [B, K], cold_start [B], category rows [B],
        n (a scalar), seed [B], eta [B])."""
        batch = tf.shape(user_id)[0]
        category = broadcast_rows(category, batch, "category")
        n = broadcast_rows(n, batch, "n")
        seed = broadcast_rows(seed, batch, "seed")
        eta = broadcast_rows(eta, batch, "eta")
        category_rows = self.category_table.lookup(category)
        checks = [
            tf.debugging.assert_greater(batch, 0, message="user_id must hold at least one id"),
            tf.debugging.assert_equal(
                category_rows >= 0, True,
                message=f"design: unknown category; the categories are {self.category_names}"),
            tf.debugging.assert_equal(
                (n >= 1) & (n <= self.restarts), True,
                message=f"design: n must be in [1, {self.restarts}] (m, the restarts of "
                        "the ascent: n designs are sampled among them)"),
            tf.debugging.assert_equal(
                n, n[0], message="design: n must be the same for every row of a request "
                                 "(the answer is [B, n, H, W, 3])"),
            tf.debugging.assert_equal(
                tf.math.is_finite(eta) & (eta >= 0.0), True,
                message="design: eta must be a finite number >= 0 (the realism weight)"),
        ]
        with tf.control_dependencies(checks):  # nothing is generated unchecked
            category_rows, n = tf.identity(category_rows), tf.identity(n[0])
        theta, cold_start = vectors_or_default(self.user_table, user_id, self.user_vectors,
                                               self.cold_start_vector)
        return theta, cold_start, category_rows, n, seed, eta

    def design_row(self, theta: tf.Tensor, category: tf.Tensor, n: tf.Tensor, seed: tf.Tensor,
                   eta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One customer's designs: (images [n, H, W, 3], scores [n], objective [n]).

        Args:
            theta: float32 [K], the customer's theta_u.
            category: int32 scalar, the GAN's category index.
            n: int32 scalar, 1 <= n <= restarts.
            seed: int32 scalar: the starting points and the sampling.
            eta: float32 scalar, the realism weight.
        """
        z_prime = initial_latents(self.restarts, self.latent_dim, seed)
        designs = maximise_preference(self.generate, self.discriminate, self.phi, theta,
                                      category, z_prime, self.steps, self.learning_rate, eta,
                                      phi_size=self.phi_size)
        chosen = softmax_sample(designs.objective, n, seed)  # eq. 11
        return (tf.gather(designs.images, chosen), tf.gather(designs.preference, chosen),
                tf.gather(designs.objective, chosen))

    @tf.function(input_signature=DESIGN.input_signature())
    def design(self, user_id, category, n=DESIGN.default("n"), seed=DESIGN.default("seed"),
               eta=DESIGN.default("eta")):
        """n designs per customer: images [B, n, H, W, 3], scores, objective [B, n]."""
        theta, cold_start, category_rows, n, seed, eta = self._checked(user_id, category, n,
                                                                       seed, eta)
        # One row after another: a request holds one row's m restarts at a time, so its memory
        # is bounded whatever its batch (the server cuts larger batches into chunks).
        images, scores, objective = tf.map_fn(
            lambda row: self.design_row(row[0], row[1], n, row[2], row[3]),
            (theta, category_rows, seed, eta), parallel_iterations=1,
            fn_output_signature=(tf.TensorSpec([None, *self.image_shape], tf.float32),
                                 tf.TensorSpec([None], tf.float32),
                                 tf.TensorSpec([None], tf.float32)))
        return {"images": images, "scores": scores, "objective": objective,
                "cold_start": cold_start}

    def signatures(self) -> dict:
        """Signature name -> function (``head_signatures``); ``serving_default`` = ``design``."""
        return head_signatures(self, GENERATION)
