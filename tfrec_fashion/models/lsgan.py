"""The conditional least-squares GAN of DVBPR's design half (paper 003, section III-C, Fig. 2).

A generator G(z, c) maps a noise vector z ~ U(-1, 1)^latent_dim and a category c to an image; a
discriminator D(x, c) scores an image of category c, 1 for real and 0 for generated. Both are
trained with the least-squares losses of eq. 7 (``losses.lsgan``); design (eq. 9,
``models.design``) later searches G's input for images a customer would like that D still calls
real.

The networks are Fig. 2's DCGAN-like pair, scaled to ``image_size`` (32 or 64 here; the paper's
128) and to widths that train on a CPU:

    G: [z, one_hot(c)] -> dense 4x4xF_4 -> BN, ReLU -> [.., one_hot(c) tiled]
       -> (transposed conv 4x4 stride 2 -> BN -> ReLU) up to H/2
       -> transposed conv 4x4 stride 2 to 3 channels -> (tanh + 1) / 2, an image in [0, 1]
    D: [2x - 1, one_hot(c) tiled] -> (conv 4x4 stride 2 -> leaky ReLU 0.2 -> [.., one_hot(c)
       tiled]) down to 4x4 -> flatten -> dense 1, an unbounded score (least squares, no sigmoid)

Widths double at each coarser resolution from ``generator_filters`` (G's layer at H/2) and
``discriminator_filters`` (D's first layer): 64 and 32 give G 4x4x256, 8x8x128, 16x16x64 and D
16x16x32, 8x8x64, 4x4x128 at 32 px (the Fashion-MNIST world's garments, recognisable per
category after ~2,500 steps of batch 32, about 3 minutes on 2 CPU cores). D has no batch normalisation, so its score of an image does not depend on the batch it came
in, and ``discriminate`` (inference mode) is the function D was trained as: eq. 9's realism
penalty reads it on single designs.

Training (``fit`` on {"image": float32 [B, H, W, 3] in [0, 1], "category": int32 [B]} batches):
each step draws fresh z, generates a batch for the batch's categories (c ~ p_data(c), as eq. 7
samples), and takes one Adam step for D on V(D) and one for G on V(G), both gradients of the same
forward pass (simultaneous updates, as TensorFlow's DCGAN tutorial; alternating steps would cost
another pass of G and D per step). ``compile`` takes one optimizer, as the training harness
passes it: G gets it and D a copy of its settings, both with Adam's ``beta_1`` set to the
model's (DCGAN's 0.5); D's optimizer is an attribute of the model, so BackupAndRestore and
``save_weights`` checkpoint both optimizers' state and a killed run resumes exactly.
"""

from __future__ import annotations

import math

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.losses.lsgan import discriminator_loss, generator_loss
from tfrec_fashion.serialization import register_serializable

_KERNEL = 4


def _initializer() -> tf.keras.initializers.Initializer:
    """DCGAN's N(0, 0.02) weights; a new instance per layer (an unseeded Keras initializer
    called twice repeats its values)."""
    return tf.keras.initializers.RandomNormal(stddev=0.02)


@register_serializable
class ConditionalLSGAN(tf.keras.Model):
    """A conditional LSGAN: G(z, c) -> image in [0, 1], D(x, c) -> realism score (1 = real).

    Args:
        n_categories: number of categories; inputs are int32 indices in [0, n_categories).
        image_size: side of the square RGB images, a power of two >= 8 (32 or 64 here).
        latent_dim: size of z (paper: 100).
        generator_filters: G's width at H/2, doubled at each coarser layer down to 4x4.
        discriminator_filters: D's first layer's width, doubled at each stride-2 layer.
        beta_1: Adam's first-moment decay for both optimizers when compiled with Adam
            (DCGAN's 0.5; Keras' 0.9 lets the two players oscillate).
        grey: G draws one channel, repeated on R, G and B, for grey catalogues (Fashion-MNIST):
            its images then cannot leave the data's grey axis, which the design ascent would
            otherwise use to move Phi with colour speckle no real item has.

    Inputs to ``fit``: dict batches {"image": float32 [B, H, W, 3] in [0, 1], "category":
    int32 [B]}; logs ``d_loss``, ``g_loss`` (eq. 7's V(D), V(G)), ``d_real`` and ``d_fake``
    (D's mean score of the real and of the generated images).

    Example:

        gan = ConditionalLSGAN(n_categories=5, image_size=32)
        gan.compile(tf.keras.optimizers.Adam(2e-4))
        gan.fit(batches, epochs=10)
        images = gan.generate(gan.sample_latent(8, seed=0), tf.fill([8], 2))  # [8, 32, 32, 3]
    """

    def __init__(self, n_categories: int, image_size: int = 32, latent_dim: int = 100,
                 generator_filters: int = 64, discriminator_filters: int = 32,
                 beta_1: float = 0.5, grey: bool = False, **kwargs):
        super().__init__(**kwargs)
        for value, name in ((n_categories, "n_categories"), (latent_dim, "latent_dim"),
                            (generator_filters, "generator_filters"),
                            (discriminator_filters, "discriminator_filters")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8
                or image_size & (image_size - 1)):
            raise ValueError("`image_size` must be a power of two >= 8 (32, 64, ...). "
                             f"Received: image_size={image_size!r}")
        if not 0.0 <= beta_1 < 1.0:
            raise ValueError(f"`beta_1` must be in [0, 1). Received: beta_1={beta_1}")
        self.n_categories = n_categories
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.generator_filters = generator_filters
        self.discriminator_filters = discriminator_filters
        self.beta_1 = beta_1
        self.grey = bool(grey)
        # === Layers ===
        self.generator = _generator(n_categories, image_size, latent_dim, generator_filters,
                                    self.grey)
        self.discriminator = _discriminator(n_categories, image_size, discriminator_filters)
        self.discriminator_optimizer: tf.keras.optimizers.Optimizer | None = None
        self.trackers = {name: tf.keras.metrics.Mean(name)
                         for name in ("d_loss", "g_loss", "d_real", "d_fake")}
        # Both networks are functional models, built with their variables; so is the model, and
        # a checkpoint (BackupAndRestore included) restores into it before it has seen data.
        self.built = True

    # ------------------------------------------------------------------ inference
    def call(self, inputs, training: bool = False) -> tf.Tensor:
        """G(z, c): inputs (z float32 [B, latent_dim], category int32 [B]) -> [B, H, W, 3]."""
        z, category = inputs
        return self.generator([z, category], training=training)

    def generate(self, z, category) -> tf.Tensor:
        """G(z, c) in inference mode: z float32 [B, latent_dim] in [-1, 1], category int32 [B]
        -> images float32 [B, H, W, 3] in [0, 1]."""
        return self.generator([tf.convert_to_tensor(z, tf.float32),
                               tf.convert_to_tensor(category, tf.int32)], training=False)

    def discriminate(self, images, category) -> tf.Tensor:
        """D(x, c) in inference mode: images float32 [B, H, W, 3] in [0, 1], category int32 [B]
        -> scores float32 [B] (1 = real, 0 = generated)."""
        return self.discriminator([tf.convert_to_tensor(images, tf.float32),
                                   tf.convert_to_tensor(category, tf.int32)], training=False)

    def sample_latent(self, n: int, seed: int) -> tf.Tensor:
        """z ~ U(-1, 1)^latent_dim, float32 [n, latent_dim], the same for the same ``seed``."""
        return tf.random.stateless_uniform([n, self.latent_dim], seed=[seed, 0],
                                           minval=-1.0, maxval=1.0)

    # ------------------------------------------------------------------ training
    def compile(self, optimizer="adam", discriminator_optimizer=None, **kwargs) -> None:
        """Keras' compile with G's optimizer; D's is ``discriminator_optimizer`` or a copy of
        ``optimizer``'s settings. Adam gets the model's ``beta_1`` in both."""
        optimizer = tf.keras.optimizers.get(optimizer)
        super().compile(optimizer=self._with_beta_1(optimizer, "generator_optimizer"),
                        **kwargs)
        if discriminator_optimizer is None:
            discriminator_optimizer = self._with_beta_1(optimizer, "discriminator_optimizer")
        self.discriminator_optimizer = tf.keras.optimizers.get(discriminator_optimizer)

    def _with_beta_1(self, optimizer: tf.keras.optimizers.Optimizer,
                     name: str) -> tf.keras.optimizers.Optimizer:
        """A new optimizer with ``optimizer``'s settings, ``beta_1`` where it has one."""
        config = optimizer.get_config()
        if "beta_1" in config:
            config["beta_1"] = self.beta_1
        config["name"] = name
        return type(optimizer).from_config(config)

    @property
    def metrics(self) -> list[tf.keras.metrics.Metric]:
        return list(self.trackers.values())  # reset by fit at each epoch

    def train_step(self, data) -> dict[str, tf.Tensor]:
        """One least-squares step for D and one for G (eq. 7) on a batch of real images."""
        if self.discriminator_optimizer is None:
            raise RuntimeError("compile the model before fit")
        real, category = data["image"], tf.cast(data["category"], tf.int32)
        z = tf.random.uniform([tf.shape(real)[0], self.latent_dim], -1.0, 1.0)
        # Losses are this replica's batch means; the replicas' gradients are summed.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake = self.generator([z, category], training=True)
            d_real = self.discriminator([real, category], training=True)
            d_fake = self.discriminator([fake, category], training=True)
            d_loss = discriminator_loss(d_real, d_fake)
            g_loss = generator_loss(d_fake)
            d_objective, g_objective = d_loss / replicas, g_loss / replicas
        discriminator, generator = self.discriminator, self.generator
        self.discriminator_optimizer.apply_gradients(zip(
            d_tape.gradient(d_objective, discriminator.trainable_variables),
            discriminator.trainable_variables))
        self.optimizer.apply_gradients(zip(
            g_tape.gradient(g_objective, generator.trainable_variables),
            generator.trainable_variables))
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss),
                            ("d_real", tf.reduce_mean(d_real)),
                            ("d_fake", tf.reduce_mean(d_fake))):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self) -> dict:
        return {"n_categories": self.n_categories, "image_size": self.image_size,
                "latent_dim": self.latent_dim, "generator_filters": self.generator_filters,
                "discriminator_filters": self.discriminator_filters, "beta_1": self.beta_1,
                "grey": self.grey, "name": self.name}


@register_serializable
class CategoryOneHot(tf.keras.layers.Layer):
    """one_hot(c): int [B] -> float32 [B, n_categories], for any B including 1 (Keras'
    CategoryEncoding drops the batch axis of a batch of one, which broke tailoring: its inverted
    prototype is one latent code)."""

    def __init__(self, n_categories: int, **kwargs):
        super().__init__(**kwargs)
        self.n_categories = n_categories

    def call(self, category) -> tf.Tensor:
        return tf.one_hot(tf.cast(category, tf.int32), self.n_categories)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_categories": self.n_categories}


@register_serializable
class TiledCategory(tf.keras.layers.Layer):
    """Appends one_hot(c) to every position of a feature map: ([B, h, w, C], int [B]) ->
    [B, h, w, C + n_categories] (how Fig. 2 conditions the convolutional layers on c)."""

    def __init__(self, n_categories: int, **kwargs):
        super().__init__(**kwargs)
        self.n_categories = n_categories

    def call(self, inputs) -> tf.Tensor:
        maps, category = inputs
        one_hot = tf.one_hot(tf.cast(category, tf.int32), self.n_categories, dtype=maps.dtype)
        shape = tf.shape(maps)
        tiled = tf.tile(one_hot[:, None, None, :], [1, shape[1], shape[2], 1])
        return tf.concat([maps, tiled], axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_categories": self.n_categories}


def _widths(image_size: int, finest: int) -> list[int]:
    """Widths of the layers at H/2, H/4, ..., 4 (finest first), doubling at each halving."""
    return [finest * 2 ** level for level in range(int(math.log2(image_size)) - 2)]


def _generator(n_categories: int, image_size: int, latent_dim: int, filters: int,
               grey: bool) -> tf.keras.Model:
    z = tf.keras.Input((latent_dim,), name="z")
    category = tf.keras.Input((), dtype=tf.int32, name="category")
    widths = _widths(image_size, filters)[::-1]  # 4x4 first
    one_hot = CategoryOneHot(n_categories, name="one_hot")(category)
    x = tf.keras.layers.Concatenate(name="z_and_category")([z, one_hot])
    x = tf.keras.layers.Dense(4 * 4 * widths[0], use_bias=False,
                              kernel_initializer=_initializer(), name="project")(x)
    x = tf.keras.layers.Reshape((4, 4, widths[0]), name="to_4x4")(x)
    x = tf.keras.layers.ReLU()(tf.keras.layers.BatchNormalization(name="bn_4x4")(x))
    x = TiledCategory(n_categories, name="category_4x4")([x, category])
    for width in widths[1:]:
        size = 2 * int(x.shape[1])
        x = tf.keras.layers.Conv2DTranspose(width, _KERNEL, strides=2, padding="same",
                                            use_bias=False, kernel_initializer=_initializer(),
                                            name=f"deconv_{size}x{size}")(x)
        x = tf.keras.layers.ReLU()(tf.keras.layers.BatchNormalization(
            name=f"bn_{size}x{size}")(x))
    x = tf.keras.layers.Conv2DTranspose(1 if grey else 3, _KERNEL, strides=2, padding="same",
                                        kernel_initializer=_initializer(), name="to_pixels")(x)
    # DCGAN's tanh, mapped to the project's [0, 1] images.
    image = tf.keras.layers.Rescaling(0.5, offset=0.5, name="pixels")(
        tf.keras.layers.Activation("tanh")(x))
    if grey:
        image = tf.keras.layers.Concatenate(name="grey_to_rgb")([image] * 3)
    return tf.keras.Model([z, category], image, name="generator")


def _discriminator(n_categories: int, image_size: int, filters: int) -> tf.keras.Model:
    image = tf.keras.Input((image_size, image_size, 3), name="image")
    category = tf.keras.Input((), dtype=tf.int32, name="category")
    x = tf.keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(image)  # as G's tanh
    for width in _widths(image_size, filters):
        x = TiledCategory(n_categories, name=f"category_{int(x.shape[1])}")([x, category])
        x = tf.keras.layers.Conv2D(width, _KERNEL, strides=2, padding="same",
                                   kernel_initializer=_initializer(),
                                   name=f"conv_{int(x.shape[1]) // 2}")(x)
        x = tf.keras.layers.LeakyReLU(0.2)(x)
    x = TiledCategory(n_categories, name="category_4")([x, category])
    score = tf.keras.layers.Dense(1, kernel_initializer=_initializer(), name="score")(
        tf.keras.layers.Flatten()(x))
    score = tf.keras.layers.Reshape((), name="squeeze")(score)
    return tf.keras.Model([image, category], score, name="discriminator")
