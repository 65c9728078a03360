"""Designing items for a customer (paper 003, section III-D): preference maximisation through a
conditional GAN, softmax sampling over the restarts, and prototype tailoring by inversion.

    x_hat_ue = theta_u . Phi(Delta G_c(z)) - eta (D_c(G_c(z)) - 1)^2          eq. 9
    max over z' in R^L of the same with z = tanh(z')                          eq. 10
    z' = atanh(z), z ~ U(-1, 1)^L, m restarts, Adam ascent on z'              eq. 10 (text)
    p(e_t) = exp(x_hat_ue_t) / sum_d exp(x_hat_ue_d)                          eq. 11
    min over z' of || G_c(tanh(z')) - X_query ||_1                            eq. 12

Delta is nearest-neighbour upscaling to Phi's input size (the paper: 128 -> 224), applied only
when the sizes differ. The functions are generic: ``generator``, ``discriminator`` and ``phi`` are
Keras models, called ``generator([z, category], training=False)``,
``discriminator([images, category], training=False)`` and ``phi(images, training=False)`` (so
batch norm uses its moving statistics and each restart's gradient is its own), or any other
differentiable callables, called ``generator(z, category)``, ``discriminator(images, category)``
and ``phi(images)``. Images are float32 [B, H, W, 3] in [0, 1]; the discriminator gives [B]
(1 = real).

The ascent is graph-safe: Adam is written out on z' inside a ``tf.while_loop`` whose body takes
the gradient with a ``tf.GradientTape``; ``steps`` may be a tensor, every op is a stock op with a
GPU kernel, and the same code runs eagerly and inside ``tf.function(input_signature=...)`` (the
serving head's ``design`` signature). Randomness is stateless: a seed gives the same designs.

``theta`` is one customer's [K] vector, or one per restart ([m, K], with ``category`` [m]), so
several customers' restarts ascend in one batch.

Example:

    z0 = initial_latents(16, gan.latent_dim, seed=0)
    designs = maximise_preference(gan.generator, gan.discriminator, dvbpr.backbone,
                                  dvbpr.user_vectors()[user], category, z0,
                                  steps=100, learning_rate=0.05, eta=1.0)
    top = softmax_sample(designs.objective, n=3, seed=0)     # eq. 11: three distinct restarts
    images = tf.gather(designs.images, top)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.losses.lsgan import realism_penalty

# Adam's moment decays and epsilon (Kingma & Ba's defaults; the paper gives none).
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-8
# z ~ U(-1, 1) is kept this far inside (-1, 1) so that atanh(z) is finite.
_Z_MARGIN = 1e-6
# The second word of each stateless seed, so one user seed draws unrelated numbers for the
# restarts' starts, the inversion's starts and the sampling's Gumbel noise.
_SALT_LATENTS, _SALT_SAMPLE = 1, 2


class Designs(NamedTuple):
    """The result of a preference maximisation, one row per restart (m rows).

    A NamedTuple, so it is a ``tf.nest`` structure: a ``tf.function`` may return it.

    Attributes:
        z_prime: float32 [m, L], the unconstrained latents (z = tanh(z')).
        images: float32 [m, H, W, 3] in [0, 1], G(tanh(z'), c).
        objective: float32 [m], preference - eta * penalty (eq. 9).
        preference: float32 [m], theta_u . Phi(Delta G(z, c)).
        penalty: float32 [m], (D(G(z, c), c) - 1)^2, L_real.
    """

    z_prime: tf.Tensor
    images: tf.Tensor
    objective: tf.Tensor
    preference: tf.Tensor
    penalty: tf.Tensor


# ---------------------------------------------------------------------------------- the objective
def initial_latents(m: int | tf.Tensor, latent_dim: int, seed: Any) -> tf.Tensor:
    """Starting points of the ascent: z' = atanh(z), z ~ U(-1, 1)^latent_dim (eq. 10's text).

    Args:
        m: number of restarts (an int, or an int32 scalar tensor).
        latent_dim: L, the generator's latent size.
        seed: an int (or int scalar tensor), or a stateless seed of shape [2].

    Returns:
        float32 [m, latent_dim].
    """
    _check_positive_int(m, "m")
    _check_positive_int(latent_dim, "latent_dim")
    z = tf.random.stateless_uniform(tf.stack([tf.cast(m, tf.int32), latent_dim]),
                                    seed=_stateless_seed(seed, _SALT_LATENTS),
                                    minval=-1.0, maxval=1.0)
    return tf.math.atanh(tf.clip_by_value(z, -1.0 + _Z_MARGIN, 1.0 - _Z_MARGIN))


def design_objective(generator: Callable, discriminator: Callable, phi: Callable, theta: Any,
                     z_prime: Any, category: Any, eta: Any, *, phi_size: Any = None,
                     ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """eq. 10 at z': the objective, the preference score and the realism penalty of each restart.

    Args:
        generator, discriminator, phi: the networks (module docstring for how each is called).
        theta: theta_u, float [K] (or [m, K], one per restart).
        z_prime: float32 [m, L].
        category: int32 scalar (or [m]), the category index c.
        eta: weight of the realism penalty (>= 0; scalar or [m]).
        phi_size: (height, width) of Phi's input; default read from ``phi`` (``input_shape`` or
            ``image_shape``); images are upscaled to it by nearest neighbour when they differ.

    Returns:
        (objective, preference, penalty), each float32 [m].
    """
    _check_non_negative(eta, "eta")
    _, objective, preference, penalty = _evaluate(
        generator, discriminator, phi, _theta(theta), tf.convert_to_tensor(z_prime, tf.float32),
        category, tf.cast(eta, tf.float32), phi_size)
    return objective, preference, penalty


def _evaluate(generator, discriminator, phi, theta, z_prime, category, eta, phi_size):
    """Images, objective, preference and penalty at z' (eq. 9 with z = tanh(z'))."""
    categories = _categories(category, z_prime)
    images = _generate(generator, tf.tanh(z_prime), categories)
    vectors = _phi(phi, upscale(images, phi_size or _phi_input_size(phi)))
    if theta.shape[-1] is not None and vectors.shape[-1] is not None \
            and theta.shape[-1] != vectors.shape[-1]:
        raise ValueError(f"`theta` must have one entry per dimension of phi's item vectors "
                         f"(K={vectors.shape[-1]}). Received: theta with shape "
                         f"{tuple(theta.shape)}")
    preference = tf.reduce_sum(vectors * theta, axis=-1)  # theta_u . Phi(Delta G_c(z))
    realism = tf.reshape(_discriminate(discriminator, images, categories), [-1])
    penalty = realism_penalty(realism)  # L_real = (D_c(G_c(z)) - 1)^2
    return images, preference - eta * penalty, preference, penalty


# ---------------------------------------------------------------------------------- the ascent
def maximise_preference(generator: Callable, discriminator: Callable, phi: Callable, theta: Any,
                        category: Any, z_prime: Any, steps: Any, learning_rate: Any, eta: Any,
                        *, phi_size: Any = None) -> Designs:
    """Preference maximisation (eq. 10): Adam ascent of the objective from each row of z'.

    The m rows are independent restarts, ascended together (the gradient of the summed
    objective is each row's own gradient). The paper keeps the best of m = 64 restarts; here all
    are returned, for ``softmax_sample`` (eq. 11) or an argmax of ``objective``.

    Args:
        generator, discriminator, phi: the networks (module docstring).
        theta: theta_u, float [K] (or [m, K], one per restart).
        category: int32 scalar (or [m]), the category index c.
        z_prime: float32 [m, L], the starts (``initial_latents``, or ``invert``'s result).
        steps: number of Adam steps (>= 0; an int or an int32 scalar tensor).
        learning_rate: Adam's step size on z' (> 0).
        eta: weight of the realism penalty (>= 0).
        phi_size: Phi's input (height, width) (``design_objective``).

    Returns:
        ``Designs`` at the last step (z', images, objective, preference, penalty).
    """
    checks = [_check_steps(steps), _check_positive(learning_rate, "learning_rate"),
              _check_non_negative(eta, "eta")]
    theta = _theta(theta)
    z_prime = tf.convert_to_tensor(z_prime, tf.float32)
    eta = tf.cast(eta, tf.float32)

    def evaluate(z):
        return _evaluate(generator, discriminator, phi, theta, z, category, eta, phi_size)

    with tf.control_dependencies([c for c in checks if c is not None]):
        z_prime = _adam_ascent(lambda z: evaluate(z)[1], z_prime, steps, learning_rate)
    images, objective, preference, penalty = evaluate(z_prime)
    return Designs(z_prime, images, objective, preference, penalty)


def _adam_ascent(values: Callable[[tf.Tensor], tf.Tensor], z_prime: tf.Tensor, steps: Any,
                 learning_rate: Any) -> tf.Tensor:
    """Adam (bias-corrected) towards larger ``values(z')`` [m], ``steps`` times, in a while loop.

    Written out rather than a Keras optimizer so that the loop carries z' and Adam's moments
    as plain tensors: no variable is created, and the loop runs inside any traced function.
    """
    learning_rate = tf.cast(learning_rate, tf.float32)

    def ascend(step, z, first, second):
        with tf.GradientTape() as tape:
            tape.watch(z)
            total = tf.reduce_sum(values(z))
        gradient = tape.gradient(total, z, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        first = ADAM_BETA_1 * first + (1.0 - ADAM_BETA_1) * gradient
        second = ADAM_BETA_2 * second + (1.0 - ADAM_BETA_2) * tf.square(gradient)
        t = tf.cast(step + 1, tf.float32)
        first_hat = first / (1.0 - tf.pow(ADAM_BETA_1, t))
        second_hat = second / (1.0 - tf.pow(ADAM_BETA_2, t))
        z = z + learning_rate * first_hat / (tf.sqrt(second_hat) + ADAM_EPSILON)  # ascent
        return step + 1, z, first, second

    steps = tf.cast(steps, tf.int32)
    zeros = tf.zeros_like(z_prime)
    _, z_prime, _, _ = tf.while_loop(lambda step, *_: step < steps, ascend,
                                     (tf.constant(0, tf.int32), z_prime, zeros, zeros))
    return z_prime


# ---------------------------------------------------------------------------------- eq. 11
def softmax_sample(objective: Any, n: Any, seed: Any) -> tf.Tensor:
    """Draws n distinct restarts, each in turn with probability exp(objective) / sum (eq. 11).

    Gumbel top-k: the n largest of objective + Gumbel noise are a draw without replacement in
    which the first index has probability exactly softmax(objective), and each next one the
    softmax over the restarts not yet drawn.

    Args:
        objective: float [m], the restarts' objective values (``Designs.objective``).
        n: how many to draw, 1 <= n <= m (an int, or an int32 scalar tensor).
        seed: an int (or int scalar tensor), or a stateless seed of shape [2].

    Returns:
        int32 [n], distinct indices into the restarts, in the order drawn.
    """
    objective = tf.convert_to_tensor(objective, tf.float32)
    if objective.shape.rank != 1:
        raise ValueError(f"`objective` must be a vector [m]. Received: shape "
                         f"{tuple(objective.shape)}")
    checks = []
    m = objective.shape[0]
    n_static = tf.get_static_value(n)
    if n_static is not None:
        _check_positive_int(n_static, "n")
        if m is not None and n_static > m:
            raise ValueError(f"`n` must be at most the number of restarts m={m}. "
                             f"Received: n={n_static}")
    else:
        checks = [tf.debugging.assert_positive(n, message="`n` must be positive"),
                  tf.debugging.assert_less_equal(n, tf.size(objective, out_type=n.dtype),
                                                 message="`n` must be at most the restarts m")]
    uniform = tf.random.stateless_uniform(tf.shape(objective), seed=_stateless_seed(seed,
                                          _SALT_SAMPLE), minval=np.finfo(np.float32).tiny, maxval=1.0)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    with tf.control_dependencies(checks):
        return tf.math.top_k(objective + gumbel, k=tf.cast(n, tf.int32), sorted=True).indices


# ---------------------------------------------------------------------------------- eq. 12
def invert(generator: Callable, image: Any, category: Any, restarts: int = 4, steps: Any = 200,
           learning_rate: Any = 0.05, seed: Any = 0, *, latent_dim: int | None = None,
           ) -> tf.Tensor:
    """The generator's nearest image to a query (eq. 12): z' minimising the mean absolute error
    || G_c(tanh(z')) - X_query ||_1 / (H W 3), by Adam from ``restarts`` starts, the best kept.

    Args:
        generator: the generator (module docstring).
        image: float [H, W, 3] in [0, 1], the prototype; resized (bilinear) to the generator's
            output size when it differs.
        category: int32 scalar, the category index c.
        restarts: number of random starts (an int >= 1).
        steps: Adam steps per start (>= 0).
        learning_rate: Adam's step size (> 0).
        seed: an int, or a stateless seed of shape [2].
        latent_dim: L; default read from a Keras generator's first input.

    Returns:
        float32 [1, L], z' of the best reconstruction (``maximise_preference``'s start for
        tailoring).
    """
    _check_positive_int(restarts, "restarts")
    checks = [_check_steps(steps), _check_positive(learning_rate, "learning_rate")]
    image = tf.convert_to_tensor(image, tf.float32)
    if image.shape.rank != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must be one RGB image [H, W, 3]. Received: shape "
                         f"{tuple(image.shape)}")
    z_start = initial_latents(restarts, _latent_dim(generator, latent_dim), seed)

    def negative_error(z):  # -L1 per restart, [restarts]
        images = _generate(generator, tf.tanh(z), _categories(category, z))
        target = image if tuple(images.shape[1:3]) == tuple(image.shape[:2]) else \
            tf.image.resize(image, tf.shape(images)[1:3], method="bilinear")
        return -tf.reduce_mean(tf.abs(images - target[None]), axis=[1, 2, 3])

    with tf.control_dependencies([c for c in checks if c is not None]):
        z_prime = _adam_ascent(negative_error, z_start, steps, learning_rate)
    best = tf.argmax(negative_error(z_prime), output_type=tf.int32)
    return z_prime[best][None]


def tailor(generator: Callable, discriminator: Callable, phi: Callable, theta: Any,
           category: Any, image: Any, steps: Any, learning_rate: Any, eta: Any, *,
           restarts: int = 4, invert_steps: Any = 200, invert_learning_rate: Any = 0.05,
           seed: Any = 0, latent_dim: int | None = None, phi_size: Any = None,
           ) -> tuple[Designs, Designs]:
    """Prototype tailoring (section III-D): ``invert`` a real item image, then
    ``maximise_preference`` from its latent, so the design stays near the item.

    Args:
        generator, discriminator, phi, theta, category, steps, learning_rate, eta, phi_size:
            as ``maximise_preference`` (theta [K], category a scalar).
        image: float [H, W, 3] in [0, 1], the item to tailor.
        restarts, invert_steps, invert_learning_rate, seed, latent_dim: ``invert``'s settings.

    Returns:
        (prototype, tailored): ``Designs`` with one row each, the inverted item's approximation
        (no ascent) and the design after ``steps`` steps from it.
    """
    z_prime = invert(generator, image, category, restarts, invert_steps, invert_learning_rate,
                     seed, latent_dim=latent_dim)
    prototype = maximise_preference(generator, discriminator, phi, theta, category, z_prime, 0,
                                    learning_rate, eta, phi_size=phi_size)
    tailored = maximise_preference(generator, discriminator, phi, theta, category, z_prime, steps,
                                   learning_rate, eta, phi_size=phi_size)
    return prototype, tailored


# ---------------------------------------------------------------------------------- the networks
def _generate(generator, z, categories):
    if isinstance(generator, tf.keras.layers.Layer):
        return generator([z, categories], training=False)
    return generator(z, categories)


def _discriminate(discriminator, images, categories):
    if isinstance(discriminator, tf.keras.layers.Layer):
        return discriminator([images, categories], training=False)
    return discriminator(images, categories)


def _phi(phi, images):
    if isinstance(phi, tf.keras.layers.Layer):
        return phi(images, training=False)
    return phi(images)


def _phi_input_size(phi) -> tuple[int, int] | None:
    """Phi's static input (height, width), from a Keras input shape or an ``image_shape``."""
    try:
        shape = phi.input_shape
    except (AttributeError, RuntimeError):
        shape = None
    if not (isinstance(shape, tuple) and len(shape) == 4):
        shape = (None, *getattr(phi, "image_shape", (None, None, None)))
    height, width = shape[1], shape[2]
    return (int(height), int(width)) if height and width else None


def upscale(images: Any, size) -> tf.Tensor:
    """Delta of eq. 9: images [B, H, W, 3] (a tensor or an array) nearest-neighbour resized to
    Phi's input ``size`` (H', W') when the sizes differ (None: unchanged); the one resize the
    ascent, the evaluation, the CLI's grid and the maps all put designs through."""
    images = tf.convert_to_tensor(images, tf.float32)
    if size is None or tuple(images.shape[1:3]) == tuple(size):
        return images
    return tf.image.resize(images, tuple(size), method="nearest")


def _latent_dim(generator, latent_dim: int | None) -> int:
    if latent_dim is None:
        try:
            latent_dim = generator.inputs[0].shape[-1]
        except (AttributeError, IndexError, TypeError):
            latent_dim = getattr(generator, "latent_dim", None)
    if latent_dim is None:
        raise ValueError("`latent_dim` is needed for a generator that is not a Keras model "
                         f"with a z input. Received: latent_dim=None, generator={generator!r}")
    return int(latent_dim)


# ---------------------------------------------------------------------------------- arguments
def _categories(category, z_prime) -> tf.Tensor:
    """The category index for each row of z': int32 [m] (a scalar is repeated)."""
    category = tf.cast(category, tf.int32)
    if category.shape.rank == 0:
        return tf.fill(tf.shape(z_prime)[:1], category)
    return category


def _theta(theta) -> tf.Tensor:
    theta = tf.convert_to_tensor(theta, tf.float32)
    if theta.shape.rank not in (1, 2):
        raise ValueError(f"`theta` must be one user vector [K] (or one per restart, [m, K]). "
                         f"Received: theta with shape {tuple(theta.shape)}")
    return theta


def _stateless_seed(seed, salt: int) -> tf.Tensor:
    """A stateless op's [2] seed: an int seed s becomes [s, salt]; a [2] seed is used as is."""
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.constant(salt, tf.int64)])
    if seed.shape != (2,):
        raise ValueError(f"`seed` must be an int or a stateless seed of shape [2]. Received: "
                         f"shape {tuple(seed.shape)}")
    return seed


def _check_positive_int(value, name: str) -> None:
    static = tf.get_static_value(value) if tf.is_tensor(value) else value
    if static is None:
        return
    if isinstance(static, bool) or not float(static).is_integer() or static < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={static!r}")


def _check_steps(steps) -> tf.Operation | None:
    """Raises for a known steps < 0; an assertion (INVALID_ARGUMENT when run) for a fed one."""
    static = tf.get_static_value(steps) if tf.is_tensor(steps) else steps
    if static is None:
        return tf.debugging.assert_non_negative(steps, message="`steps` must be >= 0")
    if isinstance(static, bool) or not float(static).is_integer() or static < 0:
        raise ValueError(f"`steps` must be a non-negative integer. Received: steps={static!r}")
    return None


def _check_positive(value, name: str) -> None:
    static = tf.get_static_value(value) if tf.is_tensor(value) else value
    if static is not None and not np.all(np.asarray(static) > 0):
        raise ValueError(f"`{name}` must be > 0. Received: {name}={static!r}")


def _check_non_negative(value, name: str) -> None:
    static = tf.get_static_value(value) if tf.is_tensor(value) else value
    if static is not None and not np.all(np.asarray(static) >= 0):
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={static!r}")
