"""Every model's hyper-parameters: one dataclass per model, registered once by ``model.name``.

A model is registered in one place: its config class, decorated with
``@MODEL_CONFIGS.register("<name>")``, names its recipe as a dotted path, ``RECIPE:
ClassVar[str] = "tfrec_fashion.training.recipes.<module>:<RecipeClass>"``, which
``training.recipes.get_recipe`` imports when the model is first trained (a test imports every
one). The configs live together in this TensorFlow-free module so that a config file is read and
checked (``tfrec-fashion train bad.yaml`` fails in a line) before TensorFlow is imported.

Each field is a constructor argument of the model its recipe builds, with the constructor's
default (see that model's docstring), except the fields a class lists in ``RECIPE_FIELDS``:
those the recipe reads itself (where item features come from, which backbone preset to build).
Recipes pass the rest with ``model_arguments(config)``, never by copying them one by one, and
``tests/training/test_model_configs.py`` holds every config to its model's constructor. A
subclass (TVBPR, I-VBPR) is a named preset of its base: it may change defaults, not fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Optional

from tfrec_fashion.config import Registry

MODEL_CONFIGS = Registry("model")


def model_arguments(config: Any) -> dict[str, Any]:
    """The config's constructor arguments: every field but ``name`` and its ``RECIPE_FIELDS``."""
    skipped = {"name", *getattr(config, "RECIPE_FIELDS", ())}
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)
            if field.name not in skipped}


@MODEL_CONFIGS.register("two_tower")
@dataclasses.dataclass
class TwoTowerConfig:
    """``models.two_tower.TwoTowerRetrieval``: user-id and item-id towers, in-batch softmax."""

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.two_tower:TwoTowerRecipe"

    name: str = "two_tower"
    embedding_dim: int = 32
    l2: float = 0.0
    temperature: Optional[float] = None


@MODEL_CONFIGS.register("bpr_mf")
@dataclasses.dataclass
class BPRMFConfig:
    """``models.vbpr.VBPR`` without item features: BPR-MF, x_ui = beta_i + gamma_u . gamma_i.

    Args:
        latent_dim: K, the size of gamma_u and gamma_i (papers: 10 to 50).
        l2_latent, l2_bias: L2 weights per triplet on the gammas and on beta_i.
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.vbpr:VBPRRecipe"
    # Trains under train.precision's mixed policies (float32 loss, float32 served vectors).
    MIXED_PRECISION: ClassVar[bool] = True

    name: str = "bpr_mf"
    latent_dim: int = 10
    l2_latent: float = 0.01
    l2_bias: float = 0.01

    def __post_init__(self) -> None:
        _non_negative(self, "latent_dim", "l2_latent", "l2_bias")
        if self.latent_dim < 1:
            raise ValueError(f"model.latent_dim must be positive for BPR-MF. Received: "
                             f"latent_dim={self.latent_dim}")


FEATURE_SOURCES = ("dataset", "attributes", "efficientnet")
TRAIN_LABELS = ("customers", "expert")  # the pair models' training votes (recipes/pairs.py)


@MODEL_CONFIGS.register("vbpr")
@dataclasses.dataclass
class VBPRConfig:
    """``models.vbpr.VBPR``: BPR-MF plus theta_u . (E f_i) + beta' . f_i on item features f_i.

    Args:
        latent_dim, visual_dim: K (gammas) and K' (theta_u, rows of E); papers: 10 and 10.
        l2_latent, l2_bias, l2_visual, l2_embedding: L2 weights on the gammas, beta_i, theta_u
            and (E, beta' and the temporal weights), see the model.
        feature_source: where f_i comes from: "dataset" (``items.features``, e.g. the
            converters' pretrained CNN features), "attributes" (one-hot of the items'
            interpretable attributes: I-VBPR), or "efficientnet" (EfficientNet-Lite0 with its
            real ImageNet weights, average-pooled, computed once from the item images).
        attributes: with "attributes": the attribute columns to encode ("category" is the
            item category); null = category and every attribute column.
        image_size: with "efficientnet": the side the images are resized to first.
        standardize: scale every feature column to zero mean, unit variance over the items.
        n_time_epochs: T > 1 makes it TVBPR (paper 002 eq. 2), with fixed equal-width epochs
            over the training interactions' time span.
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.vbpr:VBPRRecipe"
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("feature_source", "attributes", "image_size",
                                                 "standardize")
    # Trains under train.precision's mixed policies (float32 loss, float32 served vectors);
    # TVBPR and I-VBPR, its presets, too. The item features are computed in float32.
    MIXED_PRECISION: ClassVar[bool] = True

    name: str = "vbpr"
    latent_dim: int = 10
    visual_dim: int = 10
    l2_latent: float = 0.01
    l2_bias: float = 0.01
    l2_visual: float = 0.01
    l2_embedding: float = 0.0001
    feature_source: str = "dataset"
    attributes: Optional[list[str]] = None
    image_size: int = 96
    standardize: bool = True
    n_time_epochs: int = 1

    def __post_init__(self) -> None:
        _non_negative(self, "latent_dim", "l2_latent", "l2_bias", "l2_visual", "l2_embedding")
        if self.visual_dim < 1 or self.n_time_epochs < 1 or self.image_size < 1:
            raise ValueError("model.visual_dim, n_time_epochs and image_size must be positive. "
                             f"Received: visual_dim={self.visual_dim}, n_time_epochs="
                             f"{self.n_time_epochs}, image_size={self.image_size}")
        _one_of(self, "feature_source", FEATURE_SOURCES)


@MODEL_CONFIGS.register("tvbpr")
@dataclasses.dataclass
class TVBPRConfig(VBPRConfig):
    """TVBPR: ``VBPRConfig`` with time epochs (default 4)."""

    name: str = "tvbpr"
    n_time_epochs: int = 4


@MODEL_CONFIGS.register("ivbpr")
@dataclasses.dataclass
class IVBPRConfig(VBPRConfig):
    """I-VBPR (paper 002): VBPR on interpretable attribute features; with n_time_epochs > 1 it
    is I-TVBPR, whose feature-level trends (eq. 8) are read from the trained model.

    With ``standardize: true`` (the default) each one-hot column is centred, so the levels of
    one attribute sum to zero: a learned appeal (``feature_popularity``) is meaningful as a
    difference between levels ("high" vs "low"), not as an absolute value. ``standardize:
    false`` keeps raw 0/1 columns."""

    name: str = "ivbpr"
    feature_source: str = "attributes"


@MODEL_CONFIGS.register("dvbpr")
@dataclasses.dataclass
class DVBPRConfig:
    """``models.dvbpr.DVBPR`` with an image network (``layers.cnn_f`` or ``layers.gap_cnn``) trained
    end to end.

    Args:
        backbone: image network preset: CNN-F's "cnn_f" (the paper's sizes, 224x224) or
            "small_cnn" (the same layer sequence with small widths, for 32x32 images), or
            "gap_cnn" (``layers.gap_cnn``: 3x3 convs, batch norm, global average pooling, for
            32x32 images; not the paper's).
        embedding_dim: K, the width of fc8 (paper: 50).
        image_size: images are resized to this side (null: the preset's input size).
        lambda_theta: L2 weight on theta_u (paper: 1).
        weight_decay, dropout_rate: CNN-F's regularisation (paper: 1e-3, 0.5); null keeps the
            preset's.
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.dvbpr:DVBPRRecipe"
    # The recipe builds the image network from these and passes it as ``DVBPR(backbone=...)``.
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("backbone", "embedding_dim", "image_size",
                                                 "weight_decay", "dropout_rate")

    name: str = "dvbpr"
    backbone: str = "small_cnn"
    embedding_dim: int = 50
    image_size: Optional[int] = None
    lambda_theta: float = 1.0
    weight_decay: Optional[float] = None
    dropout_rate: Optional[float] = None

    def __post_init__(self) -> None:
        _non_negative(self, "lambda_theta")
        if self.backbone not in ("cnn_f", "small_cnn", "gap_cnn"):
            raise ValueError("model.backbone must be 'cnn_f', 'small_cnn' or 'gap_cnn'. Received: "
                             f"backbone={self.backbone!r}")
        if self.embedding_dim < 1 or (self.image_size is not None and self.image_size < 1):
            raise ValueError("model.embedding_dim and image_size must be positive. Received: "
                             f"embedding_dim={self.embedding_dim}, image_size={self.image_size}")


@MODEL_CONFIGS.register("stynet")
@dataclasses.dataclass
class StyNetConfig:
    """``models.stynet.StyNet`` (paper 000, 3.1.2): customer and item towers, concatenated,
    dense, sigmoid rating, MSE (a TFRS ranking task), plus a dot-product retrieval head.

    Args:
        embedding_dim: size of each tower's output (the customer embedding E_c).
        id_embedding_dim: size of the customer-id and item-id embeddings.
        feature_embedding_dim: size of each categorical feature's embedding (survey answers,
            colour, category, brand, ...).
        hidden_units: width of the dense layer on the concatenated embeddings.
        history_length: the customer's past votes the tower reads (most recent first).
        id_dropout: share of training rows whose customer and item ids are hidden, so the
            feature path alone learns to predict (the cold-start path for unknown ids).
        retrieval_weight: weight of the dot-product retrieval task (0 = rating head only).
        use_visual_features: feed the items' content features to the item tower.
        l2: L2 penalty on the embeddings and dense kernels.
        feature_source: with ``use_visual_features``, where those features come from, as for
            VBPR (``FEATURE_SOURCES``, ``layers.item_content``): "dataset" (``items.features``,
            a visual embedding), "attributes" (every attribute column, one-hot) or
            "efficientnet" (EfficientNet-Lite0 on the item images at 96x96).
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.stynet:StyNetRecipe"
    # The recipe reads the features and passes their width as ``StyNet(visual_dim=...)``.
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("feature_source",)

    name: str = "stynet"
    embedding_dim: int = 32
    id_embedding_dim: int = 16
    feature_embedding_dim: int = 8
    hidden_units: int = 64
    history_length: int = 50
    id_dropout: float = 0.1
    retrieval_weight: float = 0.1
    use_visual_features: bool = True
    l2: float = 1e-5
    feature_source: str = "dataset"

    def __post_init__(self) -> None:
        _non_negative(self, "history_length", "retrieval_weight", "l2")
        _one_of(self, "feature_source", FEATURE_SOURCES)
        _positive(self, "embedding_dim", "id_embedding_dim", "feature_embedding_dim",
                        "hidden_units")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError("model.id_dropout must be in [0, 1). Received: "
                             f"id_dropout={self.id_dropout}")


PARTIAL_DUAL_SOLVERS = ("trust_regions", "conjugate_gradient")
PARTIAL_DUAL_CENTERING = ("biases", "global", "none")


@MODEL_CONFIGS.register("partial_dual")
@dataclasses.dataclass
class PartialDualConfig:
    """``models.partial_dual.PartialDual`` (paper 000, 3.1.1; shared/PARTIAL_DUAL.md):
    squared-trace-norm matrix completion on the spectrahedron, solved in NumPy/SciPy.

    Args:
        C: weight of the squared loss, P(W) = C/2 ||P_Omega(W - Y)||^2 + 1/2 ||W||_*^2.
        rank: starting rank r of U (rank increase adds columns while the gap says so).
        solver: "trust_regions" (Riemannian trust regions with truncated CG) or
            "conjugate_gradient" (Riemannian CG).
        max_iterations: solver iterations over all ranks.
        gap_tolerance: stop when the duality gap is below this share of the objective.
        gradient_tolerance: stop a rank when the Riemannian gradient norm is below this.
        rank_increase: grow the rank while the gap certificate says it is too small.
        max_rank: upper bound on the rank (null: none).
        centering: what is removed from the training ratings before solving (and added back
            to predictions): "biases" the user + item bias model mu + b_u + b_i (its L2 chosen
            on validation; the embeddings then carry b_u and b_i as two extra columns, so
            mu + E_c . M_i is still the rating), "global" the mean mu, "none" nothing.
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.partial_dual:PartialDualRecipe"
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("centering",)

    name: str = "partial_dual"
    C: float = 1.0
    rank: int = 1
    solver: str = "trust_regions"
    max_iterations: int = 200
    gap_tolerance: float = 1e-6
    gradient_tolerance: float = 1e-8
    rank_increase: bool = True
    max_rank: Optional[int] = None
    centering: str = "biases"

    def __post_init__(self) -> None:
        if not self.C > 0:
            raise ValueError(f"model.C must be positive. Received: C={self.C}")
        if self.rank < 1 or self.max_iterations < 1 or (self.max_rank is not None
                                                        and self.max_rank < self.rank):
            raise ValueError("model.rank and max_iterations must be positive and max_rank >= "
                             f"rank. Received: rank={self.rank}, max_iterations="
                             f"{self.max_iterations}, max_rank={self.max_rank}")
        _non_negative(self, "gap_tolerance", "gradient_tolerance")
        if self.solver not in PARTIAL_DUAL_SOLVERS:
            raise ValueError(f"model.solver must be one of {list(PARTIAL_DUAL_SOLVERS)}. "
                             f"Received: solver={self.solver!r}")
        if self.centering not in PARTIAL_DUAL_CENTERING:
            raise ValueError(f"model.centering must be one of {list(PARTIAL_DUAL_CENTERING)}. "
                             f"Received: centering={self.centering!r}")


@MODEL_CONFIGS.register("pair_compatibility")
@dataclasses.dataclass
class PairCompatibilityConfig:
    """``models.pair_compatibility.PairCompatibility``: pair compatibility from item content,
    not personalised, contrastive loss on pair votes (the compatibility head's minimal model).

    Args:
        embedding_dim, hidden_dim: the item embedding network's output and hidden sizes.
        margin: the contrastive loss's margin.
        l2: L2 weight on the embedding network's kernels.
        feature_source: the item content (``layers.item_content``): "dataset", "attributes"
            (the planted compatibility's own codes, one-hot) or "efficientnet".
        attributes: with "attributes", which ones (default all).
        image_size: with "efficientnet", the images' side.
        train_labels: "customers" (the customers' pair votes) or "expert" (the dataset's
            ``expert_pairs``, labelled by the global compatibility); evaluated on the
            customers' held-out votes either way.
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.pairs:PairCompatibilityRecipe"
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("feature_source", "attributes", "image_size",
                                                 "train_labels")

    name: str = "pair_compatibility"
    embedding_dim: int = 16
    hidden_dim: int = 32
    margin: float = 1.0
    l2: float = 0.0
    feature_source: str = "attributes"
    attributes: Optional[list[str]] = None
    image_size: int = 64
    train_labels: str = "customers"

    def __post_init__(self) -> None:
        _one_of(self, "feature_source", FEATURE_SOURCES)
        _one_of(self, "train_labels", TRAIN_LABELS)
        _non_negative(self, "l2")
        if self.embedding_dim < 1 or self.hidden_dim < 1 or not self.margin > 0:
            raise ValueError(f"model.embedding_dim and hidden_dim must be positive and margin "
                             f"> 0. Received: embedding_dim={self.embedding_dim}, hidden_dim="
                             f"{self.hidden_dim}, margin={self.margin}")



PSA_NET_BACKBONES = ("features", "gap_cnn", "small_cnn", "efficientnet")


@MODEL_CONFIGS.register("psa_net")
@dataclasses.dataclass
class PsaNetConfig:
    """``models.psa_net.PSANet`` (paper 000, 3.2): personalised pair compatibility, k subspace
    masks mixed by attention weights softmax(MLP(E_c)) from a fixed customer embedding E_c,
    contrastive (or triplet) loss on pair votes. Table 1's model-level variants are switches:
    ``personalised: false``, ``subspaces: 1``, ``combiner: fc``, ``loss: triplet``; StyNet's
    embeddings instead of Partial Dual's are another ``customer_embeddings``.

    Args:
        representation_dim, hidden_dim: X's size and the hidden width of the item-features
            network ("features" backbone); with an image backbone X is its output of size
            ``representation_dim``.
        subspaces: k, the number of masks (the paper finds 3 best).
        attention_hidden_dim: the hidden width of the attention MLP on E_c.
        personalised: false = one free weighting shared by every customer (Baseline 2).
        combiner: "masks" (eq. 2) or "fc" (a dense map per subspace).
        loss: "contrastive" or "triplet" (third image uniformly at random).
        margin, l2: the loss's margin; L2 weight on the dense kernels.
        backbone: "features" (two dense layers on the items' ``feature_source`` rows,
            standardised; with "efficientnet" that is EfficientNet-Lite0 frozen under a trained
            head), "gap_cnn" or "small_cnn" (``layers.gap_cnn``, ``layers.cnn_f``: a small CNN
            trained end to end on the item images), or "efficientnet" (EfficientNet-Lite0 with
            its real ImageNet weights on the item images, pooled, under a dense layer to X;
            frozen unless ``fine_tune_top_block``).
        fine_tune_top_block: with backbone "efficientnet": train its top block and head
            convolutions (block15, head_conv; batch norm stays in inference mode) with the
            rest, on the frozen trunk's feature maps computed once per item, at
            ``fine_tune_learning_rate_scale`` times ``train.learning_rate`` (a second optimizer:
            ImageNet's weights survive only small steps).
        feature_source, attributes: with "features", the item content as for
            ``pair_compatibility`` (``layers.item_content``).
        image_size: the images' side: the CNN preset's input (32) or EfficientNet's 64 when
            null.
        customer_embeddings: a Partial Dual or StyNet run directory (or its ``embeddings.npz``)
            trained on the same dataset: E_c, matched to the dataset's customers by id; a file
            of another dataset, or missing some customer, is refused before training. Needed
            when ``personalised``.
        train_labels: "customers" (their pair votes) or "expert" (Table 1's baseline 1: the
            dataset's ``expert_pairs``, labelled by the global compatibility for no customer,
            fed as the unknown customer, i.e. the mean embedding); evaluated on the customers'
            held-out votes either way.
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.psa_net:PsaNetRecipe"
    # The recipe builds the backbone and reads the content and the embeddings from these.
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("backbone", "fine_tune_top_block",
                                                 "fine_tune_learning_rate_scale",
                                                 "feature_source", "attributes",
                                                 "image_size", "customer_embeddings",
                                                 "train_labels")

    name: str = "psa_net"
    representation_dim: int = 16
    hidden_dim: int = 32
    subspaces: int = 3
    attention_hidden_dim: int = 16
    personalised: bool = True
    combiner: str = "masks"
    loss: str = "contrastive"
    margin: float = 1.0
    l2: float = 0.0
    backbone: str = "features"
    fine_tune_top_block: bool = False
    fine_tune_learning_rate_scale: float = 0.01
    feature_source: str = "attributes"
    attributes: Optional[list[str]] = None
    image_size: Optional[int] = None
    customer_embeddings: Optional[str] = None
    train_labels: str = "customers"

    def __post_init__(self) -> None:
        _one_of(self, "backbone", PSA_NET_BACKBONES)
        _one_of(self, "train_labels", TRAIN_LABELS)
        _one_of(self, "feature_source", FEATURE_SOURCES)
        _one_of(self, "combiner", ("masks", "fc"))
        _one_of(self, "loss", ("contrastive", "triplet"))
        _non_negative(self, "l2")
        _positive(self, "representation_dim", "hidden_dim", "subspaces", "attention_hidden_dim")
        if not self.margin > 0 or (self.image_size is not None and self.image_size < 1):
            raise ValueError(f"model.margin and image_size must be positive. Received: "
                             f"margin={self.margin}, image_size={self.image_size}")
        if not 0 < self.fine_tune_learning_rate_scale <= 1:
            raise ValueError("model.fine_tune_learning_rate_scale must be in (0, 1]. Received: "
                             f"{self.fine_tune_learning_rate_scale}")
        if self.fine_tune_top_block and self.backbone != "efficientnet":
            raise ValueError("model.fine_tune_top_block tunes EfficientNet-Lite0's top block: "
                             "set backbone: efficientnet, or leave it false. Received: "
                             f"backbone={self.backbone!r}")

PAN_BACKBONES = ("attributes", "gap_cnn", "efficientnet")


@MODEL_CONFIGS.register("pan")
@dataclasses.dataclass
class PanConfig:
    """``models.pan.PAN`` (paper 001): personalised outfit scores from binary user and item codes,
    the item codes through user-aware channel and spatial attention. Tables 1-2's variants are
    switches: ``user_aware_attention: false`` (FHN, Table 2's "AN" off), ``lambda_user: 0``
    (no user-specific loss, "UL"), ``hard_negative_ratio: 0`` (no hard negatives, "HN"),
    ``personalised: false`` (the non-personalised compatibility model, g only).

    Args:
        code_bits, embedding_dim: K (binary code length) and D (user embedding size, the
            type-aware layers' hidden width).
        alpha: the weight of the user-item preference in y = g + alpha p (eq. 4).
        lambda_user, lambda_vse: the user-specific loss's and the VSE loss's weights (eq. 9).
        user_aware_attention, hard_negative_ratio, personalised: see above.
        hard_negatives, hard_candidates: how hard negatives are mined: "loss" (the
            highest-scoring of ``hard_candidates`` random outfits for the user) or
            "nearest_user" (the outfit of the batch user nearest by code; it hurts on the
            planted world, see ``models.pan``).
        relaxation, slope_start, slope_growth: the training-time code (tanh with an annealed
            slope, or "straight_through").
        l2, channel_reduction, vse_margin: see ``models.pan.PAN``.
        backbone: the item feature maps F. "attributes": each item's standardised one-hot
            attributes as a 1x1 map (fast; no spatial attention to speak of); "gap_cnn": the
            last convolution block of ``layers.gap_cnn`` on the item images (8x8x64 at 32
            px), trained end to end; "efficientnet": EfficientNet-Lite0's stride-16 map (P4,
            4x4x112 at 64 px) with its real ImageNet weights, frozen and computed once per
            item (the paper's Table 2 freezes ResNet-50).
        image_size: the images' side (default 32 for gap_cnn, 64 for efficientnet).
        text: train the text branch and its VSE loss on the items' attribute words (one-hot
            attributes; the paper's titles).
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.pan:PanRecipe"
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("backbone", "image_size", "text")

    name: str = "pan"
    code_bits: int = 64
    embedding_dim: int = 64
    alpha: float = 1.0
    lambda_user: float = 0.1
    lambda_vse: float = 0.1
    user_aware_attention: bool = True
    hard_negative_ratio: float = 0.5
    hard_negatives: str = "loss"
    hard_candidates: int = 8
    personalised: bool = True
    relaxation: str = "tanh"
    slope_start: float = 1.0
    slope_growth: float = 0.005
    l2: float = 0.0
    channel_reduction: int = 4
    vse_margin: float = 0.2
    backbone: str = "attributes"
    image_size: Optional[int] = None
    text: bool = False

    def __post_init__(self) -> None:
        _one_of(self, "backbone", PAN_BACKBONES)
        _one_of(self, "relaxation", ("tanh", "straight_through"))
        _one_of(self, "hard_negatives", ("loss", "nearest_user"))
        _non_negative(self, "alpha", "lambda_user", "lambda_vse", "l2", "slope_growth")
        if not 0 <= self.hard_negative_ratio <= 1:
            raise ValueError("model.hard_negative_ratio must be in [0, 1]. Received: "
                             f"{self.hard_negative_ratio}")
        _positive(self, "code_bits", "embedding_dim", "channel_reduction", "hard_candidates")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"model.image_size must be positive. Received: {self.image_size}")


@MODEL_CONFIGS.register("complete_the_look")
@dataclasses.dataclass
class CompleteTheLookConfig:
    """``models.complete_the_look.CompleteTheLook`` (paper 004): item content -> backbone -> fc ->
    batch norm -> dropout -> fc -> unit 128-d style embedding, trained with the triplet loss on
    complete-the-look triplets of the training outfits; ``batch_norm: false`` is the paper's
    ablation.

    Args:
        hidden_dim, embedding_dim: the two fc layers' widths (the paper: 128-d embedding).
        batch_norm, dropout_rate, margin, l2: see ``models.complete_the_look``.
        backbone: the item content. "attributes": each item's standardised one-hot attributes
            (the planted world; fast); "gap_cnn": ``layers.gap_cnn``'s conv blocks and global
            average pooling on the item images, trained end to end (the paper fine-tunes
            ResNet-18); "efficientnet": EfficientNet-Lite0's pooled 1280-d features with its
            real ImageNet weights, frozen and computed once per item.
        image_size: the images' side (default 32 for gap_cnn, 64 for efficientnet).
        similar_image_size: the side of the images EfficientNet-Lite0 embeds for the similar
            items (and the "similar as complementary" row).
    """

    RECIPE: ClassVar[str] = ("tfrec_fashion.training.recipes.complete_the_look:"
                             "CompleteTheLookRecipe")
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("backbone", "image_size", "similar_image_size")

    name: str = "complete_the_look"
    hidden_dim: int = 256
    embedding_dim: int = 128
    batch_norm: bool = True
    dropout_rate: float = 0.3
    margin: float = 0.2
    l2: float = 0.0
    backbone: str = "attributes"
    image_size: Optional[int] = None
    similar_image_size: int = 64

    def __post_init__(self) -> None:
        _one_of(self, "backbone", PAN_BACKBONES)
        _non_negative(self, "l2")
        if not 0 <= self.dropout_rate < 1 or not self.margin > 0:
            raise ValueError(f"model.dropout_rate must be in [0, 1) and model.margin positive. "
                             f"Received: dropout_rate={self.dropout_rate}, margin={self.margin}")
        _positive(self, "hidden_dim", "embedding_dim", "similar_image_size")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"model.image_size must be positive. Received: {self.image_size}")


@MODEL_CONFIGS.register("design_gan")
@dataclasses.dataclass
class DesignGanConfig:
    """``models.lsgan.ConditionalLSGAN`` (paper 003, III-C): a conditional least-squares GAN of
    the catalogue's images by category, the generator of personalised design (III-D) for the
    customers of a DVBPR run on the same dataset, held to the design protocol (Table IV).

    Args:
        dvbpr_run: the run directory of a finished DVBPR run on the same dataset (required):
            its theta_u and Phi score the designs; a run on another dataset is refused.
        image_size, latent_dim, generator_filters, discriminator_filters, beta_1, grey: see
            ``ConditionalLSGAN`` (32 or 64 px; z of 100; widths at the finest layer; Adam's
            beta_1 for both players; G draws grey images, for a grey catalogue).
        design_restarts, design_steps, design_learning_rate, design_eta: preference
            maximisation (eq. 9-11, ``models.design``) as the evaluation and the export run
            it: m random starts, Adam steps on z' and their size, the realism weight eta.
        trials, eta_trials: the design protocol's (customer, category) queries for Table IV
            and for each eta of the sweep (``evaluation.design.DesignEvaluation``).
    """

    RECIPE: ClassVar[str] = "tfrec_fashion.training.recipes.design_gan:DesignGanRecipe"
    RECIPE_FIELDS: ClassVar[tuple[str, ...]] = ("dvbpr_run", "design_restarts", "design_steps",
                                                 "design_learning_rate", "design_eta",
                                                 "trials", "eta_trials")

    name: str = "design_gan"
    dvbpr_run: Optional[str] = None
    image_size: int = 32
    latent_dim: int = 100
    generator_filters: int = 64
    discriminator_filters: int = 32
    beta_1: float = 0.5
    grey: bool = False
    design_restarts: int = 64
    design_steps: int = 100
    design_learning_rate: float = 0.05
    design_eta: float = 1.0
    trials: int = 200
    eta_trials: int = 50

    def __post_init__(self) -> None:
        _positive(self, "image_size", "latent_dim", "generator_filters", "discriminator_filters",
                        "design_restarts", "design_steps", "trials", "eta_trials")
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError("model.image_size must be a power of two >= 8 (32, 64). "
                             f"Received: image_size={self.image_size}")
        if not 0 <= self.beta_1 < 1 or not self.design_learning_rate > 0:
            raise ValueError("model.beta_1 must be in [0, 1) and design_learning_rate positive. "
                             f"Received: beta_1={self.beta_1}, design_learning_rate="
                             f"{self.design_learning_rate}")
        _non_negative(self, "design_eta")


def _positive(config: object, *fields: str) -> None:
    for field in fields:
        if getattr(config, field) < 1:
            raise ValueError(f"model.{field} must be positive. Received: "
                             f"{field}={getattr(config, field)}")


def _non_negative(config: object, *fields: str) -> None:
    for field in fields:
        if getattr(config, field) < 0:
            raise ValueError(f"model.{field} must be >= 0. Received: "
                             f"{field}={getattr(config, field)}")


def _one_of(config: object, field: str, choices: tuple[str, ...]) -> None:
    if getattr(config, field) not in choices:
        raise ValueError(f"model.{field} must be one of {list(choices)}. Received: "
                         f"{field}={getattr(config, field)!r}")
