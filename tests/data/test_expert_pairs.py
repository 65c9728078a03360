"""The planted world's fashion expert (PSA-Net's "expert data" ablation): pairs of no customer,
labelled by the population's global compatibility, seeded, sized by ``n_expert_pairs`` and
round-tripped through the dataset layout like the other tables."""

import dataclasses

import numpy as np
import pytest

from tfrec_fashion.data.dataset import ExpertPairs, FashionDataset
from tfrec_fashion.data.synthetic import (
    SyntheticWorldConfig,
    global_pair_score,
    make_world,
    true_pair_score,
)
from tfrec_fashion.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def world():
    return make_world(SyntheticWorldConfig.tiny())


def test_expert_pairs_are_top_bottom_pairs_of_both_labels_sized_by_the_config(world):
    expert = world.expert_pairs
    assert len(expert) == 1000 == world.counts()["expert_pairs"]
    assert set(world.items.category[expert.item_a]) == {"top"}
    assert set(world.items.category[expert.item_b]) == {"bottom"}
    assert 0.3 < (expert.label == 1).mean() < 0.7
    assert expert.item_a.dtype == np.int32 and expert.label.dtype == np.int8


def test_without_noise_the_labels_are_the_sign_of_the_global_compatibility():
    world = make_world(SyntheticWorldConfig.tiny(pair_noise=0.0))
    expert = world.expert_pairs
    score = global_pair_score(world, expert.item_a, expert.item_b)
    np.testing.assert_array_equal(expert.label, np.where(score >= 0, 1, -1))
    # The global score is the average customer's: the mean of the personal scores.
    users = np.arange(world.n_users)
    personal = true_pair_score(world, users[:, None], expert.item_a[None, :10],
                               expert.item_b[None, :10])
    np.testing.assert_allclose(personal.mean(0), score[:10], rtol=1e-5, atol=1e-6)


def test_with_noise_the_labels_mostly_agree_with_the_global_compatibility(world):
    expert = world.expert_pairs
    agree = (np.sign(global_pair_score(world, expert.item_a, expert.item_b))
             == expert.label).mean()
    assert agree > 0.7  # 0.77 on seed 0 (global score std ~0.6 against noise 0.5)


def test_same_seed_same_pairs_and_the_other_tables_do_not_move():
    a = make_world(SyntheticWorldConfig.tiny(seed=3))
    b = make_world(SyntheticWorldConfig.tiny(seed=3, n_expert_pairs=200))
    c = make_world(SyntheticWorldConfig.tiny(seed=4))
    for field in ("item_a", "item_b", "label"):
        np.testing.assert_array_equal(getattr(a.expert_pairs, field),
                                      getattr(make_world(SyntheticWorldConfig.tiny(seed=3))
                                              .expert_pairs, field))
    assert not np.array_equal(a.expert_pairs.item_a, c.expert_pairs.item_a)
    # Its own random stream: the size changes nothing else.
    for field in ("user", "item_a", "item_b", "label"):
        np.testing.assert_array_equal(getattr(a.pair_ratings, field),
                                      getattr(b.pair_ratings, field))
    np.testing.assert_array_equal(a.interactions.item, b.interactions.item)


def test_zero_expert_pairs_is_no_table_and_a_negative_size_is_refused():
    world = make_world(SyntheticWorldConfig.tiny(n_expert_pairs=0))
    assert world.expert_pairs is None and "expert_pairs" not in world.counts()
    with pytest.raises(ConfigError, match="n_expert_pairs.*Received: n_expert_pairs=-1"):
        SyntheticWorldConfig.tiny(n_expert_pairs=-1)


def test_save_load_round_trips_the_expert_pairs(world, tmp_path):
    folder = world.save(tmp_path / "world")
    header = (folder / "expert_pairs.csv").read_text().splitlines()[0]
    assert header == "item_a,item_b,label"
    loaded = FashionDataset.load(folder)
    for field in ("item_a", "item_b", "label"):
        np.testing.assert_array_equal(getattr(loaded.expert_pairs, field),
                                      getattr(world.expert_pairs, field))
    assert loaded.counts() == world.counts()


def test_bad_expert_labels_and_unknown_items_are_refused_by_name(world, tmp_path):
    bad = ExpertPairs(item_a=np.array([0], np.int32), item_b=np.array([1], np.int32),
                      label=np.array([0], np.int8))
    with pytest.raises(DataError, match="expert_pairs row 0 has label 0"):
        dataclasses.replace(world, expert_pairs=bad)
    folder = world.save(tmp_path / "world")
    path = folder / "expert_pairs.csv"
    path.write_text(path.read_text().replace(str(world.items.ids[world.expert_pairs.item_a[0]]),
                                             "nowhere", 1))
    with pytest.raises(DataError, match=r"expert_pairs.csv, line 2: unknown item_id 'nowhere'"):
        FashionDataset.load(folder)
