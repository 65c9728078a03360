"""The Fashion-MNIST world's outfits (PAN): (top, bottom, shoes) of real images per user, kept by
the planted personal outfit score (item taste + the pixel rules' pair score), so the outfit
protocol's oracle is far above random and well above another user's taste; the default world
(``outfits_per_user=0``) is the earlier one. Real-data tests skip without the Debian package
(``real_data`` fixture). Numbers on ``FashionMnistWorld.tiny(seed=s, outfits_per_user=10)``,
seeds 0-2, beside each threshold."""

import dataclasses

import numpy as np
import pytest

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.fashion_mnist_world import FashionMnistWorld
from tfrec_fashion.data.synthetic import true_outfit_score
from tfrec_fashion.evaluation.outfits import OutfitEvaluation

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def world():
    from tests.conftest import load_real_data

    return load_real_data(FashionMnistWorld.tiny(seed=0, outfits_per_user=10).build)


def test_every_user_has_ten_distinct_outfits_of_a_top_a_bottom_and_shoes(world):
    outfits = world.outfits
    assert outfits.slots == ("top", "bottom", "shoes") and outfits.items.shape == (3000, 3)
    assert np.bincount(outfits.user).tolist() == [10] * 300
    assert (np.asarray(world.items.category)[outfits.items] == np.array(outfits.slots)).all()
    assert len({(u, *row) for u, row in zip(outfits.user, outfits.items.tolist())}) == 3000
    classes = set(np.asarray(world.items.attributes["class_name"])[outfits.items[:, 2]])
    assert classes == {"Sandal", "Sneaker", "Ankle boot"}
    assert len(np.unique(outfits.items)) > 200  # not a handful of favourites: 306 of 320


def test_kept_outfits_score_above_random_ones_by_the_planted_outfit_score(world):
    outfits = world.outfits
    rng = np.random.default_rng(0)
    category = np.asarray(world.items.category)
    random = np.stack([rng.choice(np.flatnonzero(category == slot), len(outfits))
                       for slot in outfits.slots], axis=1)
    kept = true_outfit_score(world, outfits.user, outfits.items)
    assert kept.mean() - true_outfit_score(world, outfits.user, random).mean() > 1.0  # 2.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_outfit_oracle_is_far_above_random_and_personal(real_data, seed):
    world = real_data(FashionMnistWorld.tiny(seed=seed, outfits_per_user=10).build)
    evaluation = OutfitEvaluation(world, seed=seed)
    results = evaluation.evaluate(lambda user, outfits: np.zeros(len(user)))
    assert results["oracle_test_fitb"] > 0.6  # 0.74-0.76
    assert results["oracle_test_auc"] > 0.9 and results["oracle_test_ndcg"] > 0.9  # 0.98-1.00
    assert abs(results["random_test_fitb"] - 0.25) < 0.06  # 0.24
    assert abs(results["random_test_auc"] - 0.5) < 0.06  # 0.48-0.51
    # The average user's taste, and another user's, answer far worse: the outfits are personal.
    assert results["oracle_test_fitb"] - results["global_oracle_test_fitb"] > 0.1  # 0.51-0.59
    assert results["oracle_test_auc"] - results["global_oracle_test_auc"] > 0.05  # 0.87-0.90
    other = np.random.default_rng(0).permutation(world.n_users)
    borrowed = evaluation.metrics(lambda u, o: true_outfit_score(world, other[u], o))
    assert results["oracle_test_fitb"] - borrowed["fitb"] > 0.15  # 0.75 vs 0.38-0.46


def test_without_outfits_the_world_is_the_earlier_one(world):
    plain = FashionMnistWorld.tiny(seed=0).build()
    assert plain.outfits is None and "outfit_compatibility_weight" not in plain.truth
    assert set(world.truth) - set(plain.truth) == {"outfit_compatibility_weight"}
    for name, array in plain.truth.items():
        np.testing.assert_array_equal(world.truth[name], array, err_msg=name)
    for table in ("interactions", "ratings", "pair_ratings", "expert_pairs"):
        for field in dataclasses.fields(getattr(plain, table)):
            np.testing.assert_array_equal(getattr(getattr(world, table), field.name),
                                          getattr(getattr(plain, table), field.name))
    with pytest.raises(ValueError, match="`outfit_candidates` must be positive and at least"):
        FashionMnistWorld.tiny(outfits_per_user=80, outfit_candidates=64)


def test_save_load_round_trips_the_outfits(world, tmp_path):
    loaded = FashionDataset.load(world.save(tmp_path / "world"))
    np.testing.assert_array_equal(loaded.outfits.items, world.outfits.items)
    np.testing.assert_array_equal(loaded.outfits.user, world.outfits.user)
    np.testing.assert_allclose(true_outfit_score(loaded, loaded.outfits.user, loaded.outfits.items),
                               true_outfit_score(world, world.outfits.user, world.outfits.items))
