"""How good, how diverse and how truly liked a set of images is: the measures of the design
protocol (``evaluation.design``, the paper's Table IV and Fig. 3).

- **The project's image classifier** (``image_classifier``): three 3x3 conv / max-pool blocks,
  flattened, a 128-d dense layer (the penultimate features) and a softmax. On a Fashion-MNIST
  world it is trained on the real Fashion-MNIST train split (60,000 images, resized to the GAN's
  image size exactly as the world resizes its items) and its accuracy is measured on the real
  10,000-image test split; on any other dataset it learns the items' categories, a seeded 20% of
  the items held out for its accuracy. It is trained once and cached under
  ``<data home>/cache/classifiers/<key>`` (``data.wheels.data_home``: ``$TFREC_FASHION_HOME`` or
  ``~/.cache/tfrec_fashion``), the key a hash of its settings and of the training data's bytes,
  so tests, tables and the demo share one fit.
- ``inception_score(probabilities)``: exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016) of the
  classifier's class probabilities: 1 when every image looks alike to it (or it is unsure of
  all), the number of classes when each image is confidently one class and the classes are
  evenly used. The paper's "quality".
- ``frechet_distance(a, b)``: the Frechet distance of Gaussians fitted to two sets of the
  classifier's penultimate features, ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) (FID's
  formula with our classifier in place of Inception).
- ``diversity(images)``: 1 - mean SSIM (``tf.image.ssim``, 11x11 Gaussian window) over the pairs
  of a set of images: the paper's "Opposite Mean SSIM".
- ``planted_visual_score(dataset, users, images, classifier)``: on a Fashion-MNIST world, the
  *true* visual taste of a customer for any image, generated or real: ``truth["visual_taste"][u]
  . c(x)`` where ``c(x)`` is built as the world builds an item's ``visual_code``: the one-hot
  class (here the classifier's), then the four attributes ``item_visual_attributes`` measures on
  the pixels (the image turned back into 28x28 grey uint8), standardised with the mean and std
  of the world's own items measured the same way. On the catalogue's images it reproduces
  ``visual_taste @ visual_code.T`` wherever the classifier is right, up to the 28 -> 32 -> 28
  resampling (attribute correlations 0.94-0.99 at 32 px; the test states the bounds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.fashion_mnist import CLASS_NAMES, IMAGE_SIZE, load_fashion_mnist
from tfrec_fashion.data.fashion_mnist_world import (VISUAL_ATTRIBUTES, _to_rgb,
                                                    item_visual_attributes)
from tfrec_fashion.data.wheels import data_home
from tfrec_fashion.errors import DataError

#: bump when the network or its training changes, so old cached fits are not reused.
CLASSIFIER_VERSION = 2
_BATCH = 512


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """How the project's image classifier is trained (every field is part of its cache key).

    Args:
        image_size: side of the square RGB images it takes (the GAN's).
        widths: channels of the conv blocks (each 3x3 conv, ReLU, 2x2 max pool).
        feature_dim: width of the penultimate (dense, ReLU) features.
        epochs, batch_size, learning_rate: Adam training.
        train_size: train on this many images of the train split (None: all), seeded.
        test_size: measure the accuracy on this many test images (None: all).
        seed: seeds the subsets, the initial weights and the batches.
    """

    image_size: int = 32
    widths: tuple[int, ...] = (32, 64, 64)
    feature_dim: int = 128
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 0.001
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for field in ("image_size", "feature_dim", "epochs", "batch_size"):
            if getattr(self, field) <= 0:
                raise ValueError(f"`{field}` must be positive. "
                                 f"Received: {field}={getattr(self, field)}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))


class ImageClassifier:
    """A trained classifier of images float32 [N, H, W, 3] in [0, 1] (any H, W: resized).

    Attributes:
        model: the Keras model, images -> class probabilities [N, n_classes].
        backbone: its first layers, images -> penultimate features [N, feature_dim].
        class_names: the classes, indexed like the probabilities.
        test_accuracy: accuracy on the held-out images (module docstring).
        settings: the ``ClassifierSettings`` it was trained with.
    """

    def __init__(self, class_names: Sequence[str], settings: ClassifierSettings,
                 test_accuracy: float = float("nan")):
        import tensorflow as tf

        self.class_names = tuple(str(name) for name in class_names)
        self.settings, self.test_accuracy = settings, float(test_accuracy)
        size = settings.image_size
        # === Layers / Functional Model ===
        # [conv 3x3 -> ReLU -> 2x2 max pool] per width, flattened (not globally pooled: where
        # the parts of a garment are tells a shirt from a T-shirt; GapCNN reached 0.86 here),
        # dropout, the penultimate dense features, dropout, softmax.
        images = tf.keras.Input(shape=(size, size, 3), name="images")
        x = tf.keras.layers.Rescaling(2.0, offset=-1.0, name="preprocessing")(images)
        for index, width in enumerate(settings.widths, start=1):
            x = tf.keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                       name=f"conv{index}")(x)
            x = tf.keras.layers.MaxPool2D(2, padding="same", name=f"pool{index}")(x)
        x = tf.keras.layers.Flatten(name="flatten")(x)
        x = tf.keras.layers.Dropout(0.3, name="dropout1")(x)
        features = tf.keras.layers.Dense(settings.feature_dim, activation="relu",
                                         name="features")(x)
        x = tf.keras.layers.Dropout(0.3, name="dropout2")(features)
        probabilities = tf.keras.layers.Dense(len(self.class_names), activation="softmax",
                                              name="classes")(x)
        self.model = tf.keras.Model(images, probabilities, name="image_classifier")
        self.backbone = tf.keras.Model(images, features, name="classifier_features")

    def _batches(self, images: np.ndarray, network) -> np.ndarray:
        import tensorflow as tf

        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be float32 [N, H, W, 3] in [0, 1]. "
                             f"Received: shape={images.shape}")
        size = self.settings.image_size
        outputs = []
        for start in range(0, len(images), _BATCH):
            batch = tf.convert_to_tensor(images[start:start + _BATCH])
            if batch.shape[1:3] != (size, size):
                batch = tf.image.resize(batch, (size, size))
            outputs.append(network(batch, training=False).numpy())
        width = network.output_shape[-1]
        return np.concatenate(outputs) if outputs else np.zeros((0, width), np.float32)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities float32 [N, n_classes] of images [N, H, W, 3] in [0, 1]."""
        return self._batches(images, self.model)

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate features float32 [N, feature_dim] (what ``frechet_distance`` compares)."""
        return self._batches(images, self.backbone)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The most probable class int64 [N]."""
        return self.probabilities(images).argmax(axis=1)

    def fit(self, images: np.ndarray, labels: np.ndarray, test_images: np.ndarray,
            test_labels: np.ndarray, verbose: int = 0) -> float:
        """Trains on images uint8 [N, s, s, 3] with int labels, then sets and returns the
        accuracy on the test images."""
        import tensorflow as tf

        s = self.settings
        tf.keras.utils.set_random_seed(s.seed)
        self.model.compile(optimizer=tf.keras.optimizers.Adam(s.learning_rate),
                           loss="sparse_categorical_crossentropy")
        data = (tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, np.int64)))
                .shuffle(len(images), seed=s.seed)
                .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
                .batch(s.batch_size).prefetch(2))
        self.model.fit(data, epochs=s.epochs, verbose=verbose)
        predicted = self.predict(np.asarray(test_images, np.float32) / 255.0)
        self.test_accuracy = float(np.mean(predicted == np.asarray(test_labels)))
        return self.test_accuracy

    def save(self, directory: Path) -> None:
        """Writes ``weights.npz`` and ``classifier.json`` (classes, settings, accuracy)."""
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "weights.npz", *self.model.get_weights())
        (directory / "classifier.json").write_text(json.dumps({
            "class_names": list(self.class_names), "test_accuracy": self.test_accuracy,
            "settings": dataclasses.asdict(self.settings), "version": CLASSIFIER_VERSION},
            indent=2))

    @classmethod
    def load(cls, directory: Path) -> ImageClassifier:
        """The classifier ``save`` wrote into ``directory``."""
        meta = json.loads((directory / "classifier.json").read_text())
        settings = meta["settings"]
        classifier = cls(meta["class_names"], ClassifierSettings(**{
            **settings, "widths": tuple(settings["widths"])}), meta["test_accuracy"])
        with np.load(directory / "weights.npz") as weights:
            classifier.model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
        return classifier


def is_fashion_mnist_world(dataset: FashionDataset) -> bool:
    """Whether ``dataset`` is a Fashion-MNIST world (its truth has the planted visual code)."""
    return ("visual_code" in dataset.truth and "visual_taste" in dataset.truth
            and "visual_attributes" in dataset.truth
            and tuple(dataset.metadata.get("class_names", ())) == CLASS_NAMES)


def image_classifier(dataset: FashionDataset, settings: ClassifierSettings | None = None,
                     cache: bool = True, verbose: int = 0) -> ImageClassifier:
    """The project's image classifier for ``dataset``'s images (module docstring): read from
    the cache when this very fit was made before, else trained (and cached).

    Args:
        dataset: a Fashion-MNIST world (trained on real Fashion-MNIST) or any dataset with item
            images and categories (trained on those, 20% of the items held out).
        settings: training settings (default ``ClassifierSettings()``).
        cache: read and write ``<data home>/cache/classifiers``.
        verbose: Keras ``fit`` verbosity.
    """
    settings = settings or ClassifierSettings()
    data = _training_data(dataset, settings)
    key = hashlib.sha256(json.dumps({
        "version": CLASSIFIER_VERSION, "settings": dataclasses.asdict(settings),
        "data": data["signature"]}, sort_keys=True).encode()).hexdigest()[:16]
    folder = data_home() / "cache" / "classifiers" / f"{data['kind']}-{key}"
    if cache and (folder / "classifier.json").exists():
        return ImageClassifier.load(folder)
    classifier = ImageClassifier(data["class_names"], settings)
    classifier.fit(*data["load"](), verbose=verbose)
    if cache:
        # Written beside, then renamed: a concurrent reader never sees half a fit.
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
        classifier.save(staging)
        try:
            os.replace(staging, folder)
        except OSError:  # another process cached the same fit first: theirs is identical
            pass
    return classifier


def _training_data(dataset: FashionDataset, settings: ClassifierSettings) -> dict[str, Any]:
    """What the classifier of ``dataset`` learns: ``kind``, ``class_names``, the data's
    ``signature`` (crc32 of the arrays) and ``load()`` -> (train images uint8 [N, s, s, 3],
    train labels, test images, test labels), called only when there is no cached fit."""
    rng = np.random.default_rng([settings.seed, 1])
    size = settings.image_size
    if is_fashion_mnist_world(dataset):
        root = dataset.metadata.get("config", {}).get("root")
        train, test = load_fashion_mnist("train", root=root), load_fashion_mnist("test", root=root)
        train_index = _subset(len(train), settings.train_size, rng)
        test_index = _subset(len(test), settings.test_size, rng)
        return {"kind": "fashion_mnist", "class_names": CLASS_NAMES,
                "signature": [_crc(a) for a in (train.images, train.labels, test.images,
                                                test.labels)],
                "load": lambda: (_to_rgb(np.asarray(train.images[train_index]), size),
                                 np.asarray(train.labels[train_index]),
                                 _to_rgb(np.asarray(test.images[test_index]), size),
                                 np.asarray(test.labels[test_index]))}
    images = dataset.items.images
    if images is None:
        raise DataError(f"the image classifier learns item images; dataset {dataset.name!r} "
                        f"holds none in memory")
    class_names, labels = np.unique(np.asarray(dataset.items.category).astype(str),
                                    return_inverse=True)
    if len(class_names) < 2:
        raise DataError(f"the image classifier needs at least two item categories; dataset "
                        f"{dataset.name!r} has {list(class_names)}")
    order = rng.permutation(len(images))
    n_test = max(1, round(0.2 * len(images)))
    test_index, train_index = order[:n_test], order[n_test:]
    train_index = train_index[_subset(len(train_index), settings.train_size, rng)]
    test_index = test_index[_subset(len(test_index), settings.test_size, rng)]

    def load() -> tuple[np.ndarray, ...]:
        resized = _resize_uint8(np.asarray(images), size)
        return (resized[train_index], labels[train_index], resized[test_index],
                labels[test_index])

    return {"kind": "items", "class_names": tuple(class_names),
            "signature": [_crc(np.asarray(images)), _crc(labels)], "load": load}


def _subset(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size, replace=False))


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).tobytes())


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1:3] == (size, size):
        return images
    import tensorflow as tf

    return np.asarray(tf.cast(tf.round(tf.image.resize(images, (size, size))), tf.uint8))


# ---------------------------------------------------------------------------- the measures
def inception_score(probabilities: np.ndarray) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) of class probabilities float [N, n_classes] (rows sum to
    1), p(y) their mean: in [1, n_classes]."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"probabilities must be [N, n_classes] with N > 0. "
                         f"Received: shape={p.shape}")
    marginal = p.mean(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0).sum(axis=1)
    return float(np.exp(kl.mean()))


def inception_score_splits(probabilities: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """The inception score's mean and std over ``splits`` equal parts of the images (the usual
    report, as the paper's "quality ± std"); fewer parts when there are fewer images."""
    p = np.asarray(probabilities, np.float64)
    parts = np.array_split(p, max(1, min(int(splits), len(p))))
    scores = [inception_score(part) for part in parts]
    return float(np.mean(scores)), float(np.std(scores))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of Gaussians fitted to two sets of
    features float [N, d] (N >= 2 each)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"features must be [N, d] with the same d and N >= 2. "
                         f"Received: shapes {a.shape} and {b.shape}")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Tr (C_a C_b)^(1/2) = Tr (C_a^(1/2) C_b C_a^(1/2))^(1/2), a symmetric PSD root: stable when
    # fewer images than features leave the covariances singular (where sqrtm warns).
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T
    trace_root = np.sqrt(np.maximum(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0)).sum()
    distance = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                - 2.0 * trace_root)
    return float(max(distance, 0.0))


def mean_pairwise_ssim(images: np.ndarray) -> np.ndarray:
    """Mean SSIM over the pairs of each set: images float [S, k, H, W, 3] in [0, 1] (k >= 2)
    -> float [S]."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    if images.ndim != 5 or images.shape[1] < 2:
        raise ValueError(f"images must be [sets, k >= 2, H, W, 3]. Received: "
                         f"shape={images.shape}")
    first, second = np.triu_indices(images.shape[1], k=1)
    ssim = tf.image.ssim(tf.constant(images[:, first]), tf.constant(images[:, second]),
                         max_val=1.0)
    return np.asarray(ssim, np.float64).mean(axis=1)


def diversity(images: np.ndarray) -> float:
    """The paper's "Opposite Mean SSIM": 1 - mean SSIM over the pairs of images float
    [k, H, W, 3] in [0, 1] (k >= 2)."""
    return float(1.0 - mean_pairwise_ssim(np.asarray(images)[None])[0])


# ---------------------------------------------------------------------------- planted truth
def visual_code_of_images(dataset: FashionDataset, images: np.ndarray,
                          classifier: ImageClassifier) -> np.ndarray:
    """The world's ``visual_code`` of any images float [N, H, W, 3] in [0, 1]: float64 [N, 14],
    one-hot class (``classifier``'s) and the four measured attributes standardised with the
    mean and std of the world's items measured the same way (module docstring)."""
    if not is_fashion_mnist_world(dataset):
        raise DataError(f"the planted visual taste is the Fashion-MNIST world's; dataset "
                        f"{dataset.name!r} has no truth['visual_code'] over Fashion-MNIST classes")
    if classifier.class_names != CLASS_NAMES:
        raise ValueError(f"the planted score needs the Fashion-MNIST classifier; this one "
                         f"knows {list(classifier.class_names)}")
    images = np.asarray(images, np.float32)
    values = measured_attributes(images)
    # The catalogue measured through the same round trip, not the world's 28x28 statistics:
    # resampling shifts the attributes (texture by -0.5 std at 32 px), and every image scored
    # here, real or generated, went through it.
    items = measured_attributes(np.asarray(dataset.items.images, np.float32) / 255.0)
    standardised = (values - items.mean(0)) / np.maximum(items.std(0), 1e-12)
    one_hot = np.eye(len(CLASS_NAMES))[classifier.predict(images)]
    return np.concatenate([one_hot, standardised], axis=1)


def measured_attributes(images: np.ndarray) -> np.ndarray:
    """The world's four real-content attributes (``item_visual_attributes``) of images float
    [N, H, W, 3] in [0, 1], measured on their 28x28 grey version: float64 [N, 4]."""
    measured = item_visual_attributes(to_grey_28(images))
    return np.stack([measured[name] for name in VISUAL_ATTRIBUTES], axis=1)


def planted_visual_score(dataset: FashionDataset, users: np.ndarray, images: np.ndarray,
                         classifier: ImageClassifier) -> np.ndarray:
    """The Fashion-MNIST world's true visual taste of ``users`` int [N] for ``images`` float
    [N, H, W, 3] in [0, 1]: ``visual_taste[u] . visual_code(x)``, float64 [N]."""
    code = visual_code_of_images(dataset, images, classifier)
    taste = np.asarray(dataset.truth["visual_taste"], np.float64)[np.asarray(users)]
    return np.einsum("nd,nd->n", taste, code)


def to_grey_28(images: np.ndarray) -> np.ndarray:
    """Images float [N, H, W, 3] in [0, 1] -> grey uint8 [N, 28, 28], as Fashion-MNIST stores
    them: the channel mean, resized by nearest neighbour when H != 28 (of PIL's filters the one
    that keeps the texture attribute, a Laplacian, closest to the original's: correlation 0.94
    after 28 -> 32 -> 28, bilinear 0.84)."""
    from PIL import Image

    grey = np.clip(np.round(np.asarray(images, np.float64).mean(-1) * 255.0), 0, 255)
    grey = grey.astype(np.uint8)
    if grey.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):
        return grey
    return np.stack([np.asarray(Image.fromarray(g).resize((IMAGE_SIZE, IMAGE_SIZE),
                                                          Image.NEAREST)) for g in grey])
