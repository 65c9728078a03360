"""The complete-the-look recipe through the harness (``tfrec-fashion train``): a tiny planted world
trains a CNN-backbone run whose serving parts hold the catalogue, its similar (EfficientNet-Lite0)
and style vectors and two image embedders that give a catalogue image its own rows (so a
product not in the catalogue is embedded like one that is), the outfit slots' complements, and
an attributes run that serves by item id only."""

import numpy as np
import pytest

from tfrec_fashion.config import load_config
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.training.serving_parts import LookParts, load_parts

YAML = """
seed: 0
model: {{name: complete_the_look, backbone: {backbone}, hidden_dim: 16, embedding_dim: 8,
         similar_image_size: 32}}
data: {{name: synthetic, seed: 0, n_users: 40, n_items: 90, n_time_epochs: 1,
        outfits_per_user: 8, image_size: 32}}
train: {{epochs: 1, batch_size: 32, learning_rate: 0.001, optimizer: adam,
         monitor: val_triplet_accuracy, monitor_mode: max, verbose: 0}}
"""


def run(tmp_path, backbone):
    path = tmp_path / f"{backbone}.yaml"
    path.write_text(YAML.format(backbone=backbone))
    return train(load_config(RunConfig, path), run_dir=tmp_path / backbone)


def test_a_cnn_run_serves_similar_and_style_vectors_and_embeds_images_like_its_items(tmp_path):
    result = run(tmp_path, "gap_cnn")
    assert result.metrics["protocol"] == "complete_the_look"
    assert 0.0 <= result.metrics["test_triplet_accuracy"] <= 1.0
    parts = load_parts(result.run_dir)
    assert isinstance(parts, LookParts)
    items = result.dataset.items
    np.testing.assert_array_equal(parts.item_ids, items.ids)
    style = result.model.item_style_embeddings().numpy()
    np.testing.assert_allclose(parts.style_vectors, style, rtol=1e-6)
    np.testing.assert_allclose(parts.similar_vectors, result.recipe.similar_vectors, rtol=1e-6)
    assert parts.complements == {"top": ["bottom", "shoes"], "bottom": ["top", "shoes"],
                                 "shoes": ["top", "bottom"]}
    images = items.images[:5].astype(np.float32) / 255.0
    similar_embedder, style_embedder = result.recipe.image_embedders(result.model)
    np.testing.assert_allclose(style_embedder.embed(images).numpy(), style[:5], atol=1e-5)
    np.testing.assert_allclose(similar_embedder.embed(images).numpy(),
                               result.recipe.similar_vectors[:5], rtol=1e-4, atol=1e-4)
    # The saved functions (a fresh SavedModel each) answer the same.
    np.testing.assert_allclose(parts.style_embedder.embed(images).numpy(), style[:5], atol=1e-5)


def test_an_attributes_run_serves_by_item_id_only(tmp_path):
    result = run(tmp_path, "attributes")
    parts = load_parts(result.run_dir)
    assert parts.similar_embedder is None and parts.style_embedder is None
    assert parts.style_vectors.shape == (90, 8)
    np.testing.assert_allclose(np.linalg.norm(parts.style_vectors, axis=1), 1.0, rtol=1e-5)
