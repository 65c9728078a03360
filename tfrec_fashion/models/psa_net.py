"""PSA-Net (paper 000, section 3.2): personalised pair compatibility by subspace attention.

A backbone maps an item's content to X (D-d); k learnable masks m_1..m_k, each of X's size, cut
X into subspace embeddings X ⊙ m_i; the customer's fixed embedding E_c (Partial Dual or StyNet,
section 3.1, ``data.embeddings.CustomerEmbeddings``; not trained here: the paper's two stages)
gives the attention weights over the subspaces, and the item's embedding for that customer is
their weighted sum::

    w = softmax(MLP(E_c))                        attention weights, [k], sum to 1
    f = sum_i w_i (X ⊙ m_i)                       eq. 2
    d_c(a, b) = ||f_a - f_b||,  score = -d_c      a pair's distance and score for customer c

Since f_a - f_b = (X_a - X_b) ⊙ (sum_i w_i m_i), a customer's distance is a weighted Euclidean
distance whose weights mix the k learned masks in the customer's proportions: the subspaces are
shared, only the mix is personal. Trained with the contrastive loss on the customers' +1 / -1
pair votes (``tasks.pairs.ContrastivePairs``, margin in the config).

The paper's model-level variants are constructor switches (Table 1 and section 7.2):

- ``subspaces``: k (section 7.1.3: 1 = a single compatibility space; the paper finds 3 best).
- ``personalised=False``: w = softmax(theta), theta a free parameter [k] shared by every
  customer (Baseline 2, section 7.1.1); the customer embeddings are then not read.
- ``combiner="fc"``: a fully-connected map per subspace, X W_i (W_i [D, D], of which the mask is
  the diagonal special case), instead of the Hadamard masks (section 7.2.3; the paper says only
  "a fully connected layer", this is our reading).
- ``loss="triplet"``: the triplet loss against a third image drawn uniformly at random from all
  the items (``tasks.pairs.TripletPairs``, section 7.2.2); a batch may name it as "item_c".

Backbones (KerasHub style): ``backbone=None`` is the item-features network (two dense layers,
``pair_compatibility.item_feature_network``) on rows of ``content_shape`` (F,); any Keras model
of item images [B, H, W, 3] -> [B, D] (``layers.gap_cnn.GapCNN``, ``layers.cnn_f.CNNF``) is
trained end to end, one call on the stacked items of a batch (Siamese weights, as DVBPR). A
backbone with pretrained layers (EfficientNet's top block on its trunk's maps) names them in
``pretrained_layers``: their variables are fine-tuned by a second optimizer of the compiled one's
class at ``pretrained_learning_rate_scale`` times its learning rate (Adam's step does not shrink
with the gradient, so a smaller step needs a smaller rate, not a scaled gradient).

An unknown customer (an index out of [0, n_customers), e.g. -1) gets the mean customer embedding
and is flagged (``customer_vectors_for``), the cold-start rule of the compatibility serving head.
A customer the file does not hold but whose E_c is known (a newcomer's, from the upstream run's
fold-in or StyNet tower: ``training.recipes.psa_net.new_customer_embeddings``) is scored by
``pair_scores`` on that E_c, as a known one: the attention reads nothing else of the customer.
Training batches are integer-only, {"user", "item_a", "item_b", "label"}; the item content and
the customer embeddings are data, not parameters (``models.item_table.ItemTable``): set them
again on a model rebuilt from its config.

For serving (``training.serving_parts.CompatibilityParts``): the customers' vectors are
``customer_embeddings``, the items' vectors ``item_representations()`` (X, computed once) and
the scorer is ``pair_scores(customer_vectors, x_item, x_partner)``, graph-safe, with
``model.variables``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.models.base import RecommenderModel
from tfrec_fashion.models.item_table import ItemTable
from tfrec_fashion.models.pair_compatibility import embedding_distance, item_feature_network
from tfrec_fashion.serialization import register_serializable
from tfrec_fashion.tasks.pairs import ContrastivePairs, TripletPairs

COMBINERS = ("masks", "fc")
LOSSES = ("contrastive", "triplet")
# Masks start near 1 (X itself) and apart from each other, so the subspaces can specialise.
_MASK_INITIALIZER = {"class_name": "RandomNormal", "config": {"mean": 1.0, "stddev": 0.5}}


@register_serializable
class PSANet(RecommenderModel):
    """Personalised subspace attention network for pair compatibility (see the module docstring).

    Args:
        n_items: number of item indices (rows of the content table).
        n_customers: number of customer indices (rows of the customer embeddings).
        customer_dim: the size of a customer embedding E_c.
        content_shape: one item's content: (F,) features for the features backbone, or
            (H, W, 3) images in [0, 1] for an image backbone.
        backbone: a Keras model, content [B, *content_shape] -> X [B, D], or its
            ``tf.keras.layers.serialize`` dict; None = the item-features network.
        representation_dim, hidden_dim: D and the hidden width of the item-features network
            (unused with a backbone, whose output is X).
        subspaces: k, the number of masks.
        attention_hidden_dim: the hidden width (ReLU) of the attention MLP on E_c.
        personalised: False = one free weighting shared by all customers.
        combiner: "masks" (eq. 2) or "fc" (a dense map per subspace).
        loss: "contrastive" or "triplet" (third image uniformly at random).
        margin: the loss's margin.
        l2: L2 weight on the item-features network's and the attention MLP's kernels.
        pretrained_layers: names of the backbone's (nested) layers whose variables are
            fine-tuned at ``pretrained_learning_rate_scale`` times the learning rate.
        pretrained_learning_rate_scale: that factor, in (0, 1].
        item_content: optional float [n_items, *content_shape]; else ``set_item_content``.
        customer_embeddings: optional float [n_customers, customer_dim]; else
            ``set_customer_embeddings`` (not needed when not personalised).

    Inputs to ``fit``: dict batches {"user", "item_a", "item_b"} int [batch], "label" [batch]
    +1 / -1, and with ``loss="triplet"`` optionally "item_c" int [batch].

    Example:

        model = PSANet(n_items=200, n_customers=100, customer_dim=8, content_shape=(30,),
                       item_content=features, customer_embeddings=embeddings.user_vectors)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
        model.fit(votes.batch(128), epochs=10)
        model({"user": users, "item_a": tops, "item_b": bottoms})   # [B] scores
        model.attention_weights(users)                              # [B, k], rows sum to 1
    """

    def __init__(self, n_items: int, n_customers: int, customer_dim: int,
                 content_shape: Sequence[int], backbone: tf.keras.Model | dict | None = None,
                 representation_dim: int = 16, hidden_dim: int = 32, subspaces: int = 3,
                 attention_hidden_dim: int = 16, personalised: bool = True,
                 combiner: str = "masks", loss: str = "contrastive", margin: float = 1.0,
                 l2: float = 0.0, pretrained_layers: Sequence[str] = (),
                 pretrained_learning_rate_scale: float = 0.01, item_content: Any = None,
                 customer_embeddings: Any = None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("n_items", n_items), ("n_customers", n_customers),
                            ("customer_dim", customer_dim), ("subspaces", subspaces),
                            ("representation_dim", representation_dim),
                            ("hidden_dim", hidden_dim),
                            ("attention_hidden_dim", attention_hidden_dim)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if combiner not in COMBINERS or loss not in LOSSES:
            raise ValueError(f"combiner must be one of {list(COMBINERS)} and loss one of "
                             f"{list(LOSSES)}. Received: combiner={combiner!r}, loss={loss!r}")
        if l2 < 0:
            raise ValueError(f"l2 must be non-negative. Received: l2={l2}")
        if not 0 < pretrained_learning_rate_scale <= 1:
            raise ValueError("pretrained_learning_rate_scale must be in (0, 1]. Received: "
                             f"{pretrained_learning_rate_scale}")
        if isinstance(backbone, dict):
            backbone = tf.keras.layers.deserialize(backbone)
        content_shape = tuple(int(size) for size in content_shape)
        if backbone is None and len(content_shape) != 1:
            raise ValueError("the item-features network reads rows (F,): pass an image "
                             f"backbone for content of shape {content_shape}")
        self.n_items, self.n_customers = int(n_items), int(n_customers)
        self.customer_dim, self.content_shape = int(customer_dim), content_shape
        self.representation_dim, self.hidden_dim = int(representation_dim), int(hidden_dim)
        self.subspaces, self.attention_hidden_dim = int(subspaces), int(attention_hidden_dim)
        # ``loss`` is kept as ``pair_loss``: Keras' ``compile`` overwrites a model's ``loss``.
        self.personalised, self.combiner, self.pair_loss = bool(personalised), combiner, loss
        self.margin, self.l2 = float(margin), float(l2)
        self.has_backbone = backbone is not None
        self.pretrained_layers = tuple(str(name) for name in pretrained_layers)
        self.pretrained_learning_rate_scale = float(pretrained_learning_rate_scale)
        self.pretrained_optimizer = None
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None

        # === Layers ===
        # The backbone: content -> X (D-d).
        self.backbone = backbone if backbone is not None else item_feature_network(
            content_shape[0], hidden_dim, representation_dim, l2, name="item_representation")
        dim = int(self.backbone(tf.zeros((1, *content_shape)), training=False).shape[-1])
        found = {layer.name for layer in self.backbone.submodules
                 if isinstance(layer, tf.keras.layers.Layer)}
        if set(self.pretrained_layers) - found:
            raise ValueError(f"pretrained_layers names layers the backbone lacks: "
                             f"{sorted(set(self.pretrained_layers) - found)}")
        self.item_dim = dim  # D, the size of X (the serving scorer's item_dim)
        # The subspaces: k masks m_i of X's size (eq. 2), or k dense maps W_i.
        if combiner == "masks":
            self.subspace_masks = self.add_weight(
                name="subspace_masks", shape=(self.subspaces, dim),
                initializer=tf.keras.initializers.get(_MASK_INITIALIZER))
        else:
            self.subspace_projections = self.add_weight(
                name="subspace_projections", shape=(self.subspaces, dim, dim),
                initializer="glorot_uniform")
        # The attention: w = softmax(MLP(E_c)), or softmax(theta) shared by every customer.
        if self.personalised:
            self.attention = tf.keras.Sequential([
                tf.keras.layers.Dense(attention_hidden_dim, activation="relu",
                                      kernel_regularizer=regularizer),
                tf.keras.layers.Dense(self.subspaces, kernel_regularizer=regularizer),
            ], name="subspace_attention")
            self.attention.build([None, customer_dim])
        else:
            self.attention_logits = self.add_weight(name="attention_logits",
                                                    shape=(self.subspaces,), initializer="zeros")
        self.task = ContrastivePairs(margin) if loss == "contrastive" else TripletPairs(margin)
        self.built = True  # every weight exists: a resumed run restores them before any call
        self._item_content = ItemTable("item_content", setter="set_item_content")
        self._customer_embeddings = ItemTable("customer_embeddings",
                                              setter="set_customer_embeddings")
        if item_content is not None:
            self.set_item_content(item_content)
        if customer_embeddings is not None:
            self.set_customer_embeddings(customer_embeddings)

    # ------------------------------------------------------------------ data tables
    def set_item_content(self, content: Any) -> None:
        """Sets the content table, float [n_items, *content_shape], rows in item order."""
        self._item_content.set(content, (self.n_items, *self.content_shape),
                               self.distribute_strategy)

    def set_customer_embeddings(self, embeddings: Any) -> None:
        """Sets the fixed customer embeddings E, float [n_customers, customer_dim]."""
        self._customer_embeddings.set(embeddings, (self.n_customers, self.customer_dim),
                                      self.distribute_strategy)

    @property
    def customer_embeddings(self) -> tf.Variable:
        """E, float32 [n_customers, customer_dim] (the serving head's customer vectors)."""
        return self._customer_embeddings.get(self.name)

    # ------------------------------------------------------------------ customers
    def customer_vectors_for(self, customers: Any) -> tuple[tf.Tensor, tf.Tensor]:
        """(E_c float32 [B, customer_dim], known bool [B]) of customer indices [B]; an index out
        of [0, n_customers) gets the mean embedding and known False."""
        customers = tf.cast(customers, tf.int32)
        table = self.customer_embeddings
        known = (customers >= 0) & (customers < self.n_customers)
        rows = tf.gather(table, tf.where(known, customers, 0))
        mean = tf.reduce_mean(table, axis=0, keepdims=True)
        return tf.where(known[:, None], rows, mean), known

    def subspace_attention(self, customer_vectors: tf.Tensor) -> tf.Tensor:
        """w = softmax(MLP(E_c)): float32 [B, k] (rows sum to 1) of E_c [B, customer_dim]; not
        personalised: softmax(theta) on every row."""
        customer_vectors = tf.convert_to_tensor(customer_vectors, tf.float32)
        if self.personalised:
            return tf.nn.softmax(self.attention(customer_vectors), axis=-1)
        logits = tf.broadcast_to(self.attention_logits,
                                 [tf.shape(customer_vectors)[0], self.subspaces])
        return tf.nn.softmax(logits, axis=-1)

    def attention_weights(self, customers: Any) -> tf.Tensor:
        """w of customer indices [B]: float32 [B, k] (an unknown customer's is the mean
        embedding's)."""
        customers = tf.cast(customers, tf.int32)
        if not self.personalised:  # the customer embeddings are not read
            return self.subspace_attention(tf.zeros([tf.shape(customers)[0], 0]))
        return self.subspace_attention(self.customer_vectors_for(customers)[0])

    # ------------------------------------------------------------------ items
    def represent(self, content: Any, training: bool = False) -> tf.Tensor:
        """X = backbone(content): float32 [B, D] of content [B, *content_shape]."""
        return self.backbone(tf.convert_to_tensor(content, tf.float32), training=training)

    def item_representations(self, batch_size: int = 256) -> tf.Tensor:
        """X of every item, float32 [n_items, D] (inference mode), ``batch_size`` at a time."""
        content = self._item_content.get(self.name)
        return tf.concat([self.represent(content[start:start + batch_size])
                          for start in range(0, self.n_items, batch_size)], axis=0)

    def subspace_embeddings(self, x: tf.Tensor) -> tf.Tensor:
        """X ⊙ m_i for every subspace (or X W_i with the "fc" combiner): [B, k, D]."""
        if self.combiner == "masks":
            return x[:, None, :] * self.subspace_masks[None]
        return tf.einsum("bd,kde->bke", x, self.subspace_projections)

    def embed(self, x: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """f = sum_i w_i (X ⊙ m_i) (eq. 2): float32 [B, D] of X [B, D] and w [B, k]."""
        return tf.einsum("bk,bkd->bd", weights, self.subspace_embeddings(x))

    # ------------------------------------------------------------------ pairs
    def distances(self, customer_vectors: tf.Tensor, x_a: tf.Tensor,
                  x_b: tf.Tensor) -> tf.Tensor:
        """d_c(a, b) = ||f_a - f_b||: float32 [B] of E_c [B, customer_dim] and X [B, D] each."""
        weights = self.subspace_attention(customer_vectors)
        return embedding_distance(self.embed(x_a, weights), self.embed(x_b, weights))

    def pair_scores(self, customer_vectors: Any, x_a: Any, x_b: Any) -> tf.Tensor:
        """-d_c(a, b): float32 [B], higher = more compatible; graph-safe, the serving scorer's
        (user [B, customer_dim], item [B, D], partner [B, D]) function."""
        return -self.distances(tf.convert_to_tensor(customer_vectors, tf.float32),
                               tf.convert_to_tensor(x_a, tf.float32),
                               tf.convert_to_tensor(x_b, tf.float32))

    def _representations(self, items: list[tf.Tensor], training: bool) -> list[tf.Tensor]:
        """X of each index tensor [B], the backbone called once on them all stacked."""
        content = tf.gather(self._item_content.get(self.name), tf.concat(items, axis=0))
        return tf.split(self.backbone(content, training=training), len(items))

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        weights = self.attention_weights(inputs["user"])
        items = [inputs["item_a"], inputs["item_b"]]
        if self.pair_loss == "triplet":  # the third image, uniform over all items (section 7.2.2)
            third = inputs.get("item_c")
            if third is None:
                third = tf.random.uniform(tf.shape(items[0]), 0, self.n_items, tf.int32)
            items.append(tf.cast(third, items[0].dtype))
        embeddings = [self.embed(x, weights) for x in self._representations(items, training)]
        distances = embedding_distance(embeddings[0], embeddings[1])
        if self.pair_loss == "contrastive":
            return self.task(distances, inputs["label"])
        return self.task(distances, embedding_distance(embeddings[0], embeddings[2]),
                         inputs["label"])

    # ------------------------------------------------------------------ fine-tuning
    def compile(self, optimizer="rmsprop", **kwargs) -> None:
        """Keras' compile; with ``pretrained_layers`` also their optimizer: the compiled one's
        class and settings at ``pretrained_learning_rate_scale`` times its learning rate."""
        super().compile(optimizer=optimizer, **kwargs)
        self.pretrained_optimizer = None
        if self._pretrained_variables():
            config = self.optimizer.get_config()
            if isinstance(config["learning_rate"], dict):  # a serialised schedule
                raise ValueError("pretrained_layers need a constant learning rate to scale. "
                                 f"Received: {config['learning_rate']!r}")
            config["learning_rate"] = (float(config["learning_rate"])
                                       * self.pretrained_learning_rate_scale)
            config["name"] = f"{config['name']}_pretrained"
            self.pretrained_optimizer = type(self.optimizer).from_config(config)

    def _pretrained_variables(self) -> list[tf.Variable]:
        return [variable for layer in self.backbone.submodules
                if isinstance(layer, tf.keras.layers.Layer)
                and layer.name in self.pretrained_layers
                for variable in layer.trainable_variables]

    def apply_gradients(self, gradients: list[tf.Tensor]) -> None:
        """The pretrained layers' gradients applied by their own optimizer (when compiled with
        one), the others' by the model's."""
        if self.pretrained_optimizer is None:
            return super().apply_gradients(gradients)
        pretrained = {id(variable) for variable in self._pretrained_variables()}
        for optimizer, slow in ((self.optimizer, False), (self.pretrained_optimizer, True)):
            optimizer.apply_gradients(
                [(gradient, variable) for gradient, variable
                 in zip(gradients, self.trainable_variables)
                 if (id(variable) in pretrained) == slow])

    def call(self, inputs) -> tf.Tensor:
        """Scores of {"user", "item_a", "item_b"} index triples: float32 [B]."""
        weights = self.attention_weights(inputs["user"])
        x_a, x_b = self._representations([inputs["item_a"], inputs["item_b"]], False)
        return -embedding_distance(self.embed(x_a, weights), self.embed(x_b, weights))

    def get_config(self) -> dict:
        # The item content and the customer embeddings are data: set them after from_config.
        return {"n_items": self.n_items, "n_customers": self.n_customers,
                "customer_dim": self.customer_dim, "content_shape": list(self.content_shape),
                "backbone": (tf.keras.layers.serialize(self.backbone) if self.has_backbone
                             else None),
                "representation_dim": self.representation_dim, "hidden_dim": self.hidden_dim,
                "subspaces": self.subspaces, "attention_hidden_dim": self.attention_hidden_dim,
                "personalised": self.personalised, "combiner": self.combiner,
                "loss": self.pair_loss, "margin": self.margin, "l2": self.l2,
                "pretrained_layers": list(self.pretrained_layers),
                "pretrained_learning_rate_scale": self.pretrained_learning_rate_scale,
                "name": self.name}
