"""The Fashion-MNIST world's pair votes: planted personal compatibility rules over what the real
pixels show (intensity contrast, texture clash, area balance, class pairing), the expert's labels
and the ratings that give customers their embeddings. Real-data tests skip without the Debian
package (``real_data`` fixture). Numbers on ``FashionMnistWorld.tiny(seed=0)`` beside each
threshold."""

import dataclasses

import numpy as np
import pytest

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.fashion_mnist_world import PAIR_SUBSPACES, FashionMnistWorld
from tfrec_fashion.data.splits import split_ratings_by_user
from tfrec_fashion.data.synthetic import global_pair_score, true_pair_score
from tfrec_fashion.metrics import customer_level_metrics

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def world():
    from tests.conftest import load_real_data

    return load_real_data(FashionMnistWorld.tiny(seed=0).build)


def test_votes_pair_tops_with_bottoms_and_have_both_labels(world):
    votes = world.pair_ratings
    assert len(votes) == 300 * 20 and len(world.expert_pairs) == 1000
    assert set(world.items.category[votes.item_a]) == {"top"}
    assert set(world.items.category[votes.item_b]) == {"bottom"}
    assert 0.35 < (votes.label == 1).mean() < 0.65  # 0.53
    assert set(np.unique(world.expert_pairs.label)) == {-1, 1}
    assert set(np.unique(world.ratings.value)) == {-1.0, 1.0}
    assert world.truth["user_subspace_weights"].shape == (300, len(PAIR_SUBSPACES))
    np.testing.assert_allclose(world.truth["user_subspace_weights"].sum(1), 1.0, rtol=1e-5)


def test_every_rule_varies_over_top_bottom_pairs(world):
    votes = world.pair_ratings
    codes, tables = world.truth["item_subspace_codes"], world.truth["subspace_compatibility"]
    for s, name in enumerate(PAIR_SUBSPACES):
        values = tables[s, codes[votes.item_a, s], codes[votes.item_b, s]]
        assert abs(values.mean()) < 0.2 and 0.7 < values.std() < 1.3, name  # standardised


def test_held_out_votes_are_learnable_and_personal(world):
    """On each customer's held-out votes the personal oracle is far above chance and above the
    best single weighting (the global oracle): there is a signal, and it is personal."""
    test = split_ratings_by_user(world.pair_ratings, seed=0).test
    oracle = true_pair_score(world, test.user, test.item_a, test.item_b)
    glob = global_pair_score(world, test.item_a, test.item_b)
    auc = {name: customer_level_metrics(test.user, score, test.label)["roc_auc"]
           for name, score in (("oracle", oracle), ("global", glob))}
    assert auc["oracle"] > 0.8  # 0.91
    assert auc["oracle"] - auc["global"] > 0.06  # 0.91 vs 0.77 pooled over all votes


def test_same_seed_same_votes_and_the_earlier_tables_do_not_move(world):
    again = FashionMnistWorld.tiny(seed=0).build()
    for field in ("user", "item_a", "item_b", "label"):
        np.testing.assert_array_equal(getattr(again.pair_ratings, field),
                                      getattr(world.pair_ratings, field))
    fewer = FashionMnistWorld.tiny(seed=0, pair_ratings_per_user=0, n_expert_pairs=0,
                                   ratings_per_user=0).build()
    assert fewer.pair_ratings is None and fewer.expert_pairs is None and fewer.ratings is None
    np.testing.assert_array_equal(fewer.interactions.item, world.interactions.item)
    np.testing.assert_array_equal(fewer.truth["user_item_score"], world.truth["user_item_score"])


def test_the_persona_tilts_the_taste_towards_the_rule_a_customer_cares_about(world):
    tilted = dataclasses.replace(FashionMnistWorld.tiny(seed=0), persona_strength=2.0).build()
    weights = tilted.truth["user_subspace_weights"]
    intensity = tilted.truth["visual_code"][:, 10]  # standardised intensity column
    liking = tilted.truth["visual_taste"] @ tilted.truth["visual_code"].T @ intensity
    assert np.corrcoef(weights[:, 0], liking)[0, 1] > 0.3
    plain = world.truth["visual_taste"] @ world.truth["visual_code"].T @ intensity
    assert abs(np.corrcoef(weights[:, 0], plain)[0, 1]) < 0.2


def test_save_load_round_trips_the_new_tables(world, tmp_path):
    loaded = FashionDataset.load(world.save(tmp_path / "world"))
    for name in ("pair_ratings", "expert_pairs", "ratings"):
        table = getattr(world, name)
        for field in dataclasses.fields(table):
            np.testing.assert_array_equal(getattr(getattr(loaded, name), field.name),
                                          getattr(table, field.name))
    np.testing.assert_array_equal(loaded.truth["subspace_compatibility"],
                                  world.truth["subspace_compatibility"])
