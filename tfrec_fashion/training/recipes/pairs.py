"""The recipes' side of the pair protocol (``evaluation.pairs``), and the recipe of
``models.pair_compatibility.PairCompatibility``, the compatibility head's minimal model.

``PairVoteRecipe`` is what every model trained on customers' +1 / -1 pair votes shares
(PairCompatibility, PSA-Net): it builds the protocol's ``PairEvaluation`` in ``prepare``, feeds
the training votes to ``fit`` as integer batches {"user", "item_a", "item_b", "label"}, logs the
validation AUCs every epoch (``val_auc``, ``val_customer_auc``: the best epoch is chosen on
them), evaluates the test votes beside the oracles, and builds the compatibility head's parts
(``score_pairs``, ``complete_pair``). A model's recipe keeps the model-specific hooks:
``prepare_inputs``, ``build_model``, ``pair_scores`` and ``serving_parts``.

``model.train_labels: expert`` (Table 1's baseline 1, paper 000 7.1.2) trains on the dataset's
``expert_pairs`` instead: pairs labelled by the population's global compatibility for no
customer. They are fed as the unknown customer (user -1), whom PSA-Net gives the mean customer
embedding (its cold-start rule), rather than once per customer: an expert's label says nothing
about any one customer, and repeating it for every customer would teach the attention that all
customers agree, at n_customers times the cost. Validation, the best epoch and the test metrics
stay on the customers' held-out votes, so both label sources are measured on the same votes.

PairCompatibility's item content comes from ``model.feature_source`` (``layers.item_content``:
the dataset's features, the one-hot attributes or EfficientNet-Lite0), computed once and
standardised; the standardised rows are what the served scorer reads
(``CompatibilityParts.item_vectors``). The model is not personalised, so its customers' vectors
are empty (E = 0): every customer, known or not, gets the same scores, and ``cold_start`` still
says who was unknown.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Sequence

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset, PairRatings
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.pairs import PairEvaluation
from tfrec_fashion.layers.item_content import item_features
from tfrec_fashion.models.pair_compatibility import PairCompatibility
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import Recipe
from tfrec_fashion.training.serving_parts import CompatibilityParts, PairScorer


class PairVoteRecipe(Recipe):
    """A recipe trained with ``fit`` on the pair protocol's training votes; best epoch by the
    validation votes' AUC (see the module docstring).

    Attributes set by ``prepare``:
        dataset: the dataset.
        evaluation: the protocol's ``PairEvaluation`` on it (its ``split`` holds the votes).
        train_votes: the votes ``fit`` trains on (``training_votes``).
    """

    protocol = "pairs"

    def prepare(self, dataset: FashionDataset) -> None:
        self.dataset = dataset
        self.evaluation: PairEvaluation = self.protocol_evaluation(dataset)
        self.train_votes = self.training_votes(dataset)
        self.prepare_inputs(dataset)

    def training_votes(self, dataset: FashionDataset) -> PairRatings:
        """The votes ``fit`` sees: the split's training votes, or with ``model.train_labels:
        expert`` the dataset's ``expert_pairs`` as votes of the unknown customer (user -1)."""
        if self.model_config.train_labels == "customers":
            return self.evaluation.split.train
        expert = dataset.expert_pairs
        if expert is None or len(expert) == 0:
            raise DataError(f"model.train_labels: expert needs the dataset's expert_pairs; "
                            f"dataset {dataset.name!r} has none: build the synthetic or "
                            "Fashion-MNIST world with n_expert_pairs > 0")
        return PairRatings(user=np.full(len(expert), -1, np.int32), item_a=expert.item_a,
                           item_b=expert.item_b, label=expert.label)

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        """Hook: derive the model's inputs (item content, customer embeddings) from the data."""

    @abc.abstractmethod
    def pair_scores(self, model, user: np.ndarray, item_a: np.ndarray,
                    item_b: np.ndarray) -> np.ndarray:
        """The model's scores [n] of int index arrays [n] (higher = more compatible)."""

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        train = self.train_votes
        pairs = tf.data.Dataset.from_tensor_slices({
            "user": train.user.astype(np.int32), "item_a": train.item_a.astype(np.int32),
            "item_b": train.item_b.astype(np.int32), "label": train.label.astype(np.float32)})
        pairs = pairs.shuffle(len(train), seed=self.seed, reshuffle_each_iteration=True)
        if self.train_config.steps_per_epoch:
            pairs = pairs.repeat()
        return pairs.batch(self.train_config.batch_size).prefetch(tf.data.AUTOTUNE), None

    def callbacks(self, model) -> list[tf.keras.callbacks.Callback]:
        return [EpochMetrics(lambda m: self.evaluation.metrics(self._score(m), "validation"))]

    def evaluate(self, model) -> dict[str, float]:
        return self.evaluation.evaluate(self._score(model))

    def _score(self, model) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        return lambda user, item_a, item_b: self.pair_scores(model, user, item_a, item_b)

    def compatibility_parts(self, user_vectors: np.ndarray, item_vectors: np.ndarray,
                            score: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor],
                            variables: Sequence[tf.Variable],
                            attention: Callable[[tf.Tensor], tf.Tensor] | None = None,
                            **info: Any) -> CompatibilityParts:
        """The compatibility head's parts: the dataset's customers with ``user_vectors`` [U, E]
        and items with ``item_vectors`` [N, F], the graph function ``score(user [B, E], item
        [B, F], partner [B, F])`` reading ``variables`` (and ``attention(user)`` -> subspace
        weights [B, S], if the model has them), the training votes' complements, and ``info``
        beside the model's and the dataset's names."""
        dataset = self.dataset
        user_vectors = np.asarray(user_vectors, np.float32).reshape(len(dataset.users), -1)
        item_vectors = np.asarray(item_vectors, np.float32)
        info = {"model": self.model_config.name, "dataset": dataset.name,
                "n_users": len(dataset.users), "n_items": dataset.n_items, **info}
        return CompatibilityParts(
            user_ids=dataset.users.ids, user_vectors=user_vectors, item_ids=dataset.items.ids,
            item_categories=dataset.items.category, item_vectors=item_vectors,
            complements=self.evaluation.complements(),
            scorer=PairScorer(user_vectors.shape[1], item_vectors.shape[1], score, variables,
                              attention),
            info=info)


class PairCompatibilityRecipe(PairVoteRecipe):
    """Trains ``PairCompatibility`` on the standardised item features of
    ``model.feature_source``."""

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        config = self.model_config
        self.features, _ = item_features(dataset, config.feature_source, config.attributes,
                                         config.image_size)

    def build_model(self) -> PairCompatibility:
        return PairCompatibility(self.dataset.n_items, self.features.shape[1],
                                 item_features=self.features, name=self.model_config.name,
                                 **model_arguments(self.model_config))

    def pair_scores(self, model: PairCompatibility, user: np.ndarray, item_a: np.ndarray,
                    item_b: np.ndarray) -> np.ndarray:
        return model.pair_scores(self.features[item_a], self.features[item_b]).numpy()

    def serving_parts(self, model: PairCompatibility) -> CompatibilityParts:
        def score(user: tf.Tensor, item: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
            return model.pair_scores(item, partner)  # not personalised: user is [B, 0]

        return self.compatibility_parts(np.zeros((len(self.dataset.users), 0)), self.features,
                                        score, model.variables,
                                        feature_source=self.model_config.feature_source)
