"""Recipe for ``models.lsgan.ConditionalLSGAN`` (paper 003, III-C/D): a conditional GAN of the
catalogue's images, trained with ``fit`` beside a finished DVBPR run, held to the design
protocol (``evaluation.design``, Table IV).

- **Data**: every catalogue item's image at ``model.image_size`` (float32 [0, 1]) and its
  category, indexed in sorted order of the dataset's ``items.category`` values (the GAN's c);
  batches of ``train.batch_size`` shuffled items, ``train.steps_per_epoch`` of them an epoch
  (default one pass). The GAN models the catalogue; no item is held out (the protocol compares
  designs with the catalogue itself).
- **DVBPR** (``model.dvbpr_run``): theta_u and Phi of a finished DVBPR run, rebuilt by
  ``harness.load_run``. Its dataset must be this run's: the same name, item ids and user ids,
  else the run is refused before anything is written, naming both datasets.
- **Monitor**: at each epoch's end ``val_frechet_phi``, the Frechet distance between the
  catalogue's and as many generated images (the catalogue's categories, fixed z) in DVBPR's Phi
  space (a Frechet Inception Distance with the recommender's own image network as the feature
  map: it measures what the design objective sees, costs one pass of Phi and needs no
  classifier), and ``val_d_gap``, D's mean score of the catalogue minus that of those generated
  images (how easily D still tells them apart). The GAN's losses say little about quality (the
  two players balance them). "val_" as Keras names what is measured at an epoch's end; no item
  is held out.
- **Evaluation**: ``evaluation.design.DesignEvaluation`` on a ``Designer`` of the GAN and the
  DVBPR run (preference maximisation of ``models.design``), plus the monitor's final values.
- **Serving**: ``GenerationParts`` (the generation head's ``design`` signature): the DVBPR run's
  customers and theta_u, G and D, Phi, the ascent's settings and the catalogue for tailoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.evaluation.design import Designer, DesignEvaluation
from tfrec_fashion.evaluation.design_quality import frechet_distance
from tfrec_fashion.layers.item_content import item_images
from tfrec_fashion.models.design import (initial_latents, maximise_preference, softmax_sample,
                                         upscale)
from tfrec_fashion.models.dvbpr import DVBPR
from tfrec_fashion.models.lsgan import ConditionalLSGAN
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import Recipe
from tfrec_fashion.training.serving_parts import (ConditionalGan, DesignSettings,
                                                  GenerationParts)

_BATCH = 256  # images per inference call (generation, Phi, D)
_MONITOR_SEED = 7  # the monitor's fixed z: every epoch is measured on the same draws


class DesignGanRecipe(Recipe):
    """Trains ``ConditionalLSGAN`` on the catalogue beside a DVBPR run (module docstring).

    Attributes set by ``prepare``:
        dataset, categories (sorted category names, the GAN's index), item_category (int32
        [n_items]), images (float32 [n_items, s, s, 3] in [0, 1]), dvbpr (the DVBPR model),
        dvbpr_recipe, user_vectors (theta_u [n_users, K]) and item_vectors (Phi(X_i) [n_items,
        K]).
    """

    protocol = "design"

    def prepare(self, dataset: FashionDataset) -> None:
        config = self.model_config
        self.dataset = dataset
        self.categories = [str(name) for name in np.unique(np.asarray(dataset.items.category))]
        self.item_category = np.searchsorted(
            self.categories, np.asarray(dataset.items.category).astype(str)).astype(np.int32)
        self.images = np.asarray(item_images(dataset, config.image_size), np.float32)
        self.dvbpr_recipe, self.dvbpr = load_dvbpr_run(config.dvbpr_run, dataset)
        self.user_vectors = self.dvbpr.user_vectors().numpy()
        self.item_vectors = self.dvbpr.item_vectors().numpy()
        self._monitor_z = None

    def build_model(self) -> ConditionalLSGAN:
        return ConditionalLSGAN(len(self.categories), name=self.model_config.name,
                                **model_arguments(self.model_config))

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        data = tf.data.Dataset.from_tensor_slices({"image": self.images,
                                                   "category": self.item_category})
        batch_size = min(self.train_config.batch_size, len(self.images))
        data = data.shuffle(len(self.images), seed=self.seed, reshuffle_each_iteration=True)
        if self.train_config.steps_per_epoch is not None:
            data = data.repeat()
        return data.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE), None

    def callbacks(self, model: ConditionalLSGAN) -> list[tf.keras.callbacks.Callback]:
        # "val_": measured at each epoch's end, not on the training batches (and Keras' CSVLogger
        # writes every key twice, the copy "NA", when no logged key starts with it).
        return [EpochMetrics(self.monitor, prefix="val_")]

    # ------------------------------------------------------------------ the monitor
    def monitor(self, model: ConditionalLSGAN) -> dict[str, float]:
        """``frechet_phi`` and ``d_gap`` of the current GAN (module docstring)."""
        if self._monitor_z is None:
            self._monitor_z = model.sample_latent(len(self.images), _MONITOR_SEED).numpy()
        generated = generate(model, self._monitor_z, self.item_category)
        return {"frechet_phi": frechet_distance(self.phi_vectors(generated), self.item_vectors),
                "d_gap": float(np.mean(discriminate(model, self.images, self.item_category))
                               - np.mean(discriminate(model, generated, self.item_category)))}

    def phi_vectors(self, images: np.ndarray) -> np.ndarray:
        """Phi(Delta x) of images at the GAN's size: float32 [N, K] (nearest-neighbour
        resized to DVBPR's input, as eq. 9's Delta)."""
        size = self.dvbpr.image_shape[:2]
        return np.concatenate([self.dvbpr.embed_items(upscale(images[start:start + _BATCH],
                                                               size)).numpy()
                               for start in range(0, len(images), _BATCH)])

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: ConditionalLSGAN) -> dict[str, float]:
        config = self.model_config
        evaluation = DesignEvaluation(self.dataset, seed=self.seed, model_name=config.name,
                                      trials=config.trials, eta_trials=config.eta_trials,
                                      eta=config.design_eta)
        final = {f"val_{name}": value for name, value in self.monitor(model).items()}
        return {**evaluation.evaluate(self.designer(model)), **final}

    def designer(self, model: ConditionalLSGAN) -> Designer:
        """The GAN and the DVBPR run as the design protocol's ``Designer``."""
        config = self.model_config
        phi, phi_size = self.dvbpr.backbone, self.dvbpr.image_shape[:2]

        @tf.function(reduce_retracing=True)
        def ascend(theta, category, z_prime, eta):
            return maximise_preference(model.generator, model.discriminator, phi, theta,
                                       category, z_prime, steps=config.design_steps,
                                       learning_rate=config.design_learning_rate, eta=eta,
                                       phi_size=phi_size)

        def design(user: int, category: int, n: int, eta: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
            z_prime = initial_latents(config.design_restarts, model.latent_dim, seed)
            designs = ascend(tf.constant(self.user_vectors[user]), tf.constant(category,
                                                                              tf.int32),
                             z_prime, tf.constant(eta, tf.float32))
            chosen = softmax_sample(designs.objective, n, seed)
            return (tf.gather(designs.images, chosen).numpy(),
                    tf.gather(designs.objective, chosen).numpy())

        def preference(images: np.ndarray, users: np.ndarray) -> np.ndarray:
            return np.sum(self.phi_vectors(np.asarray(images, np.float32))
                          * self.user_vectors[np.asarray(users)], axis=-1)

        return Designer(categories=list(self.categories), user_vectors=self.user_vectors,
                        item_vectors=self.item_vectors,
                        generate=lambda z, category: generate(model, z, category),
                        preference=preference, design=design, latent_dim=model.latent_dim)

    # ------------------------------------------------------------------ serving
    def serving_parts(self, model: ConditionalLSGAN) -> GenerationParts:
        config, dataset = self.model_config, self.dataset
        gan = ConditionalGan(
            latent_dim=model.latent_dim, image_shape=(model.image_size, model.image_size, 3),
            generate=lambda z, category: model.generator([z, category], training=False),
            discriminate=lambda images, category: model.discriminator([images, category],
                                                                      training=False),
            variables=[*model.generator.variables, *model.discriminator.variables])
        settings = DesignSettings(restarts=config.design_restarts, steps=config.design_steps,
                                  learning_rate=config.design_learning_rate,
                                  eta=config.design_eta)
        info = {"model": config.name, "dataset": dataset.name, "dvbpr_run": config.dvbpr_run,
                "n_users": dataset.n_users, "n_items": dataset.n_items,
                "categories": list(self.categories), "image_size": model.image_size}
        return GenerationParts(
            user_ids=dataset.users.ids, user_vectors=self.user_vectors,
            categories=list(self.categories), gan=gan,
            phi=self.dvbpr_recipe.item_embedder(self.dvbpr), settings=settings,
            item_ids=dataset.items.ids, item_categories=dataset.items.category,
            item_images=np.round(self.images * 255.0).astype(np.uint8), info=info)


def load_dvbpr_run(run_dir: str | None, dataset: FashionDataset) -> tuple[Recipe, DVBPR]:
    """The recipe and model of the finished DVBPR run in ``run_dir``; refuses a run that is not
    DVBPR, or that was trained on another dataset than ``dataset`` (naming both)."""
    from tfrec_fashion.training.harness import load_run  # the harness imports the recipes

    if not run_dir:
        raise ConfigError("model.dvbpr_run: name the directory of a finished DVBPR run on the "
                          "same dataset (its theta_u and Phi score the designs)")
    if not Path(run_dir).is_dir():
        raise ConfigError(f"model.dvbpr_run: {run_dir} is no run directory; train the DVBPR "
                          "run first with `tfrec-fashion train` (e.g. "
                          "configs/dvbpr_fashion_mnist.yaml)")
    config, recipe, model = load_run(run_dir)
    if not isinstance(model, DVBPR):
        raise ConfigError(f"model.dvbpr_run: {run_dir} holds a {config.model.name!r} run, not "
                          "DVBPR")
    theirs = recipe.dataset
    if not _same_dataset(theirs, dataset):
        raise ConfigError(f"model.dvbpr_run: {run_dir} was trained on dataset "
                          f"{_describe(theirs)}, this run's data is dataset {_describe(dataset)}; "
                          "a design GAN needs the DVBPR run of its own dataset (give both runs "
                          "the same data section)")
    return recipe, model


def _same_dataset(a: FashionDataset, b: FashionDataset) -> bool:
    # The interactions too: two worlds of one seed share their name and ids, but a taste
    # setting (e.g. visual_weight) changes who bought what, so theta_u means something else.
    same = [(a.items.ids, b.items.ids), (a.users.ids, b.users.ids),
            (a.interactions.user, b.interactions.user), (a.interactions.item, b.interactions.item)]
    return a.name == b.name and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in same)


def _describe(dataset: FashionDataset) -> str:
    return f"{dataset.name!r} ({dataset.n_users} users, {dataset.n_items} items)"


def generate(model: ConditionalLSGAN, z: Any, category: Any) -> np.ndarray:
    """G(z, c) in inference mode, in batches: float32 [N, H, W, 3] in [0, 1]."""
    z, category = np.asarray(z, np.float32), np.asarray(category, np.int32)
    return np.concatenate([model.generate(z[start:start + _BATCH],
                                          category[start:start + _BATCH]).numpy()
                           for start in range(0, len(z), _BATCH)])


def discriminate(model: ConditionalLSGAN, images: np.ndarray, category: Any) -> np.ndarray:
    """D(x, c) in inference mode, in batches: float32 [N]."""
    category = np.asarray(category, np.int32)
    return np.concatenate([model.discriminate(images[start:start + _BATCH],
                                              category[start:start + _BATCH]).numpy()
                           for start in range(0, len(images), _BATCH)])

