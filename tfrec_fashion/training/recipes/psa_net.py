"""Recipe for ``models.psa_net.PSANet`` (paper 000, 3.2): the pair protocol's votes as the
minimal pair model has them (``pairs.PairVoteRecipe``), the customers' fixed embeddings from an
earlier Partial Dual or StyNet run (the paper's two stages), and the compatibility head.

- **Item content** (``model.backbone``): "features" reads the standardised rows of
  ``model.feature_source`` (``layers.item_content``, as ``pair_compatibility``); "gap_cnn" and
  "small_cnn" read the item images at ``model.image_size`` and train that CNN end to end;
  "efficientnet" runs EfficientNet-Lite0's frozen trunk (ImageNet weights, up to its top block)
  once per item and trains its top block (``model.fine_tune_top_block``) and a dense layer to
  X on those feature maps (``layers.efficientnet_lite.split_after``): the content is the
  trunk's maps, the backbone the top block, pooling and the dense layer.
- **Customer embeddings** (``model.customer_embeddings``: a run directory or its
  ``embeddings.npz``, ``data.embeddings.CustomerEmbeddings``): E_c of every customer of the
  dataset, looked up by id, each column standardised over the customers (an affine map the
  attention MLP would otherwise have to learn: Partial Dual's factors are small, StyNet's are
  not). A file written on another dataset, or lacking a customer, is refused in ``prepare``,
  before the run directory is written. Not read when the model is not personalised.
- **Serving** (``CompatibilityParts``): each customer's E_c as the embeddings file holds it
  (empty when not personalised), each item's X (the backbone's output, computed once) and
  ``PSANet.pair_scores`` on the standardised E_c as the scorer (the standardisation inside it),
  so an unknown customer gets the mean embedding and is flagged by ``cold_start``, the model's
  own rule; ``score_pairs`` also answers the weights the score used, ``attention_weights``
  [B, k] (``PSANet.subspace_attention``).
- **New customers** (issue 24): a customer not in the file is scored from their E_c in the
  file's space, ``pair_scores(..., customer_embeddings=...)``, served by the compatibility
  head's ``complete_pair_new_customer`` and ``score_pairs_new_customer`` (their
  ``customer_embedding``). That E_c is what the upstream run computes for a
  newcomer from their votes (and StyNet's survey answers): ``new_customer_embeddings`` runs
  the upstream run's own ``NewCustomerQuery`` (``upstream_new_customer``: its serving parts,
  Partial Dual's fold-in or StyNet's customer tower), as its served ``recommend_new_customer``
  answers it in ``query``.
- **Interpretability** (``evaluate``): on a world with planted subspaces, a personalised model's
  ``attention_subspace_accuracy`` (the share of customers whose largest attention weight lands
  on their planted dominant subspace, after matching learned to planted subspaces) and
  ``attention_subspace_chance`` (the same with the customers shuffled:
  ``metrics.subspace_attention``) join the pair protocol's metrics in metrics.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.embeddings import CustomerEmbeddings
from tfrec_fashion.errors import ConfigError, DataError
from tfrec_fashion.layers.efficientnet_lite import TOP_BLOCK_INPUT, split_after
from tfrec_fashion.layers.item_content import (efficientnet_backbone, feature_scaling,
                                               item_features, item_images, on_item_images)
from tfrec_fashion.metrics.subspace_attention import attention_subspace_accuracy
from tfrec_fashion.models.psa_net import PSANet
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.dvbpr import BACKBONES
from tfrec_fashion.training.recipes.pairs import PairVoteRecipe
from tfrec_fashion.training.serving_parts import (CompatibilityParts, NewCustomerQuery,
                                                  has_parts, load_parts)

_EFFICIENTNET_SIZE = 64  # EfficientNet-Lite0's image side when model.image_size is null


def customer_embeddings_for(path: str | Path, dataset: FashionDataset) -> np.ndarray:
    """E_c of every customer of ``dataset``, float32 [n_users, d] in its user order, from the
    embeddings file (or run directory) at ``path``; ``DataError`` in one line naming the file and
    the dataset when they do not match (another dataset, customers missing)."""
    embeddings = CustomerEmbeddings.load(path)
    vectors, known = embeddings.user_vectors_for(dataset.users.ids)
    written_on = embeddings.metadata.get("dataset")
    problems = []
    if written_on is not None and written_on != dataset.name:
        problems.append(f"it was written on dataset {written_on!r}")
    if not known.all():
        missing = np.asarray(dataset.users.ids)[~known]
        problems.append(f"{len(missing)} of its {len(known)} customers are not in the file "
                        f"(e.g. {str(missing[0])!r})")
    if problems:
        raise DataError(
            f"model.customer_embeddings: {path} ({embeddings.metadata.get('model', 'unknown')} "
            f"embeddings, {len(embeddings.user_ids)} customers) does not match dataset "
            f"{dataset.name!r}: {' and '.join(problems)}; train Partial Dual or StyNet on this "
            "dataset and name that run")
    return vectors


def upstream_new_customer(source: str | Path) -> NewCustomerQuery:
    """How the run that wrote PSA-Net's customer embeddings (``model.customer_embeddings``: a
    Partial Dual or StyNet run directory, or the ``embeddings.npz`` in one) computes a new
    customer's E_c from their votes: its serving parts' ``NewCustomerQuery``; ``ConfigError``
    naming ``source`` when it is no such run."""
    path = Path(source)
    run_dir = path if path.is_dir() else path.parent
    new_customer = getattr(load_parts(run_dir), "new_customer", None) \
        if has_parts(run_dir) else None
    if new_customer is None:
        raise ConfigError(f"{source}: not a finished Partial Dual or StyNet run that folds new "
                          f"customers in ({run_dir} holds no serving parts with a "
                          "new-customer query); a new customer's embedding comes from the run "
                          "that wrote the file")
    return new_customer


def new_customer_embeddings(new_customer: NewCustomerQuery,
                            votes: Sequence[Sequence[tuple[str, float]]],
                            surveys: Sequence[Mapping[str, str]] | None = None) -> np.ndarray:
    """E_c float32 [B, d] of B customers not in the embeddings file, in its space: the upstream
    run's ``new_customer`` query (``upstream_new_customer``) of each one's (item id, vote) pairs
    and, for a model that reads a survey (StyNet), question -> answer mappings (None: none);
    a customer with neither gets the upstream's cold-start vector. An unknown item id, survey
    question or answer, or a vote outside the rating range is an ``InvalidArgumentError``
    naming it, as served."""
    return new_customer.vectors(votes, surveys)


class PsaNetRecipe(PairVoteRecipe):
    """Trains ``PSANet`` on the pair votes with fixed customer embeddings (module docstring)."""

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        config = self.model_config
        self.customer_table = self.file_embeddings = self.customer_scaling = None
        if config.customer_embeddings is not None:
            self.file_embeddings = np.asarray(
                customer_embeddings_for(config.customer_embeddings, dataset), np.float32)
            self.customer_scaling = feature_scaling(self.file_embeddings)
            self.customer_table = self.standardised(self.file_embeddings)
        elif config.personalised:
            raise ConfigError("model.customer_embeddings: PSA-Net reads each customer's fixed "
                              "embedding from a Partial Dual or StyNet run on this dataset; "
                              "train one (configs/partial_dual.yaml) and name its run directory")
        if config.backbone == "features":
            self.content, _ = item_features(dataset, config.feature_source, config.attributes,
                                            config.image_size or _EFFICIENTNET_SIZE)
        elif config.backbone == "efficientnet":
            self.images = item_images(dataset, config.image_size or _EFFICIENTNET_SIZE)
            self.efficientnet = efficientnet_backbone(int(self.images.shape[1]))
            trunk, self.top_block = split_after(self.efficientnet, TOP_BLOCK_INPUT)
            self.content = on_item_images(trunk, self.images)  # frozen: once per item
        else:
            preset = BACKBONES[config.backbone].PRESETS[config.backbone]
            self.content = item_images(dataset, config.image_size or preset["image_shape"][0])

    def build_model(self) -> PSANet:
        config = self.model_config
        backbone = None
        if config.backbone == "efficientnet":
            backbone = self._efficientnet_top(config.representation_dim,
                                              config.fine_tune_top_block)
        elif config.backbone != "features":
            backbone = BACKBONES[config.backbone].from_preset(
                config.backbone, output_dim=config.representation_dim,
                image_shape=tuple(self.content.shape[1:]))
        customer_dim = 1 if self.customer_table is None else self.customer_table.shape[1]
        tuned = ()
        if config.backbone == "efficientnet" and config.fine_tune_top_block:
            tuned = tuple(layer.name for layer in self.top_block.layers
                          if layer.trainable_weights)
        return PSANet(self.dataset.n_items, len(self.dataset.users), customer_dim,
                      tuple(self.content.shape[1:]), backbone=backbone,
                      pretrained_layers=tuned,
                      pretrained_learning_rate_scale=config.fine_tune_learning_rate_scale,
                      item_content=self.content, customer_embeddings=self.customer_table,
                      name=config.name, **model_arguments(config))

    def _efficientnet_top(self, output_dim: int, fine_tune: bool) -> tf.keras.Model:
        """The trunk's maps -> X: EfficientNet's top block and pooling (its own layers, so a
        tuned block is the whole network's), then a dense layer named "representation"."""
        for layer in self.top_block.layers:  # batch norm keeps its ImageNet statistics
            layer.trainable = fine_tune and not isinstance(
                layer, tf.keras.layers.BatchNormalization)
        maps = tf.keras.Input(self.content.shape[1:], name="trunk_maps")
        x = tf.keras.layers.Dense(output_dim, name="representation")(self.top_block(maps))
        return tf.keras.Model(maps, x, name="efficientnet_top")

    def image_model(self, model: PSANet) -> tuple[tf.keras.Model, np.ndarray, float]:
        """For attention maps: (images -> X with every convolution a top-level layer, the
        items' images float32 [N, s, s, 3] in [0, 1], the factor the model wants them times);
        ``ConfigError`` for the item-features backbone (no image on the path)."""
        config = self.model_config
        if config.backbone == "features":
            raise ConfigError("model.backbone: features: PSA-Net reads item features, not "
                              "images; attention maps need backbone gap_cnn, small_cnn or "
                              "efficientnet")
        if config.backbone == "efficientnet":
            dense = model.backbone.get_layer("representation")
            return (tf.keras.Model(self.efficientnet.inputs, dense(self.efficientnet.output),
                                   name="efficientnet_representation"),
                    np.asarray(self.images, np.float32), 255.0)
        return model.backbone, np.asarray(self.content, np.float32), 1.0

    def standardised(self, embeddings):
        """The model's E_c of embeddings as the file holds them, float32 [B, d] (NumPy or
        tensor in, the same out): each column less its mean over the dataset's customers,
        over its spread; unchanged when the model reads none (not personalised)."""
        if self.customer_scaling is None or not self.model_config.personalised:
            return embeddings
        mean, scale = self.customer_scaling
        return (embeddings - mean) / scale

    def customer_vectors(self, model: PSANet) -> np.ndarray:
        """What the attention reads per customer: the standardised E_c [n_users, d], or
        [n_users, 0] when the model is not personalised (its weights are the same for
        everyone)."""
        if not model.personalised:
            return np.zeros((len(self.dataset.users), 0), np.float32)
        return model.customer_embeddings.numpy()

    def pair_scores(self, model: PSANet, user: np.ndarray, item_a: np.ndarray,
                    item_b: np.ndarray, customer_embeddings: np.ndarray | None = None
                    ) -> np.ndarray:
        """Scores float32 [B] of (item_a, item_b) for customer rows ``user`` [B], or, with
        ``customer_embeddings``, for customers given by their E_c float [B, d] as the file holds
        them (a customer not in the file: ``new_customer_embeddings``'; ``user`` not read);
        ValueError for another size or a value that is not finite."""
        x = model.item_representations().numpy()  # the backbone once per item, not per vote
        if customer_embeddings is None:
            vectors = self.customer_vectors(model)[user]
        else:
            given = np.asarray(customer_embeddings, np.float32)
            expected = (len(item_a), model.customer_dim if model.personalised else 0)
            if given.shape != expected or not np.isfinite(given).all():
                raise ValueError(f"customer_embeddings must be finite float [{expected[0]}, "
                                 f"{expected[1]}] (one E_c per pair, the embeddings file's "
                                 f"size). Received: shape {list(given.shape)}, finite: "
                                 f"{bool(np.isfinite(given).all())}")
            vectors = self.standardised(given)
        return model.pair_scores(vectors, x[item_a], x[item_b]).numpy()

    def evaluate(self, model: PSANet) -> dict[str, float]:
        """The pair protocol's metrics and, for a personalised model on a world with planted
        subspaces, how well its attention finds each customer's dominant one (module
        docstring)."""
        results = super().evaluate(model)
        planted = self.dataset.truth.get("user_subspace_weights")
        if planted is not None and model.personalised:
            learned = model.attention_weights(np.arange(len(self.dataset.users))).numpy()
            found = attention_subspace_accuracy(learned, planted, seed=self.seed)
            results["attention_subspace_accuracy"] = found["accuracy"]
            results["attention_subspace_chance"] = found["chance"]
        return results

    def serving_parts(self, model: PSANet) -> CompatibilityParts:
        """The compatibility head's parts: the customers' E_c as the file holds them and a
        scorer that standardises them, so a request's ``customer_embedding`` is in the file's
        space (a newcomer's: the upstream's ``recommend_new_customer`` query)."""
        config = self.model_config
        source = config.feature_source if config.backbone == "features" else "images"
        personalised = model.personalised
        info = {}
        if personalised:
            info["customer_vectors"] = (
                "E_c as model.customer_embeddings holds them (a new customer's: that run's "
                "recommend_new_customer query), standardised inside the scorer")
        return self.compatibility_parts(
            self.file_embeddings if personalised else self.customer_vectors(model),
            model.item_representations().numpy(),
            lambda user, item, partner: model.pair_scores(self.standardised(user), item,
                                                          partner),
            model.variables, lambda user: model.subspace_attention(self.standardised(user)),
            backbone=config.backbone, feature_source=source,
            subspaces=config.subspaces, personalised=config.personalised,
            customer_embeddings=(None if config.customer_embeddings is None
                                 else str(config.customer_embeddings)), **info)
