"""VBPR family (BPR-MF, VBPR, TVBPR): the predictor and the loss on known values, TVBPR reducing to
VBPR, learning on planted worlds built here (cold items from their features; a colour whose appeal
rises over time), clear errors, config and weight round trips."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.data.pipelines import bpr_dataset
from tfrec_fashion.data.samplers import BprTripletSampler
from tfrec_fashion.metrics import per_user_auc_from_embeddings
from tfrec_fashion.models.vbpr import VBPR

# ---------------------------------------------------------------------------- known values
U, I, K, KV, F, T = 2, 3, 2, 2, 3, 3


def hand_set(model, seed=0):
    """Assigns random values to every parameter of ``model``; returns them by paper name."""
    rng = np.random.default_rng(seed)
    variables = {"gamma_user": getattr(model, "gamma_user", None),
                 "gamma_item": getattr(model, "gamma_item", None),
                 "beta_item": model.beta_item, "theta_user": getattr(model, "theta_user", None),
                 "E": getattr(model, "embedding_kernel", None),
                 "beta_visual": getattr(model, "visual_bias", None),
                 "w": getattr(model, "time_weights", None),
                 "b": getattr(model, "time_bias_weights", None),
                 "delta_E": getattr(model, "embedding_drift", None),
                 "delta_beta": getattr(model, "visual_bias_drift", None)}
    values = {}
    for key, variable in variables.items():
        if variable is None:
            continue
        variable = getattr(variable, "embeddings", variable)
        value = rng.normal(0.0, 1.0, variable.shape).astype(np.float32)
        variable.assign(value)
        values[key] = value[:, 0] if key == "beta_item" else value
    return values


def numpy_scores(p, features=None, t=None):
    """x_ui of eq. 1-2 in NumPy: [U, I]."""
    x = p["beta_item"][None, :] + p["gamma_user"] @ p["gamma_item"].T if "gamma_user" in p \
        else np.broadcast_to(p["beta_item"], (len(p["theta_user"]), len(p["beta_item"])))
    if features is None:
        return x
    theta_i = features @ p["E"].T
    beta = p["beta_visual"]
    if t is not None:
        theta_i = theta_i * p["w"][t] + features @ p["delta_E"][t].T
        beta = beta * p["b"][t] + p["delta_beta"][t]
    return x + p["theta_user"] @ theta_i.T + features @ beta


FEATURES = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, -1.0], [0.3, 0.3, 0.3]], np.float32)


def test_bpr_mf_scores_are_beta_plus_gamma_products():
    model = VBPR(U, I, latent_dim=K)
    p = hand_set(model)
    assert not model.has_visual and not model.is_temporal
    assert set(model.parameters()) == {"gamma_user", "gamma_item", "beta_item"}
    np.testing.assert_allclose(model.score(tf.range(U)), numpy_scores(p), rtol=1e-5, atol=1e-6)
    assert model.user_vectors().shape == (U, 1 + K)


def test_vbpr_scores_add_theta_e_f_and_visual_bias():
    model = VBPR(U, I, latent_dim=K, visual_dim=KV, item_features=FEATURES)
    p = hand_set(model)
    assert model.has_visual and not model.is_temporal and model.feature_dim == F
    assert set(model.parameters()) == {"gamma_user", "gamma_item", "beta_item", "theta_user", "E",
                                       "beta_visual"}
    expected = numpy_scores(p, FEATURES)
    np.testing.assert_allclose(model.score(tf.range(U)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.score(tf.range(U), epoch=0), expected, rtol=1e-5, atol=1e-5)
    assert model.item_vectors().shape == (I, 1 + K + KV + 1)


def test_tvbpr_scores_at_every_epoch_and_inner_products_are_exact():
    model = VBPR(U, I, latent_dim=K, visual_dim=KV, item_features=FEATURES, n_time_epochs=T)
    p = hand_set(model)
    assert model.is_temporal
    parameters = model.parameters()
    assert list(parameters) == ["gamma_user", "gamma_item", "beta_item", "theta_user", "E",
                                "beta_visual", "w", "b", "delta_E", "delta_beta"]
    for key, value in p.items():
        np.testing.assert_array_equal(parameters[key], value)
    users = tf.range(U)
    for t in range(T):
        np.testing.assert_allclose(model.score(users, epoch=t), numpy_scores(p, FEATURES, t),
                                   rtol=1e-5, atol=1e-5)
        assert not np.allclose(model.score(users, epoch=t), numpy_scores(p, FEATURES, t - 1))
        # The scores are inner products of the vectors a retrieval index serves.
        np.testing.assert_array_equal(
            tf.matmul(model.user_vectors(), model.item_vectors(t), transpose_b=True),
            model.score(users, epoch=t))
    np.testing.assert_array_equal(model.score(users), model.score(users, epoch=T - 1))  # "now"
    np.testing.assert_array_equal(model(tf.constant([1, 0])), model.user_vectors().numpy()[[1, 0]])


def test_visual_only_model_has_no_latent_factors():
    model = VBPR(U, I, latent_dim=0, visual_dim=KV, item_features=FEATURES)
    p = hand_set(model)
    assert "gamma_user" not in model.parameters()
    np.testing.assert_allclose(model.score(tf.range(U)), numpy_scores(p, FEATURES), rtol=1e-5,
                               atol=1e-5)


def test_loss_is_bpr_plus_l2_on_known_values():
    l2 = {"l2_latent": 0.1, "l2_bias": 0.2, "l2_visual": 0.3, "l2_embedding": 0.05}
    model = VBPR(U, I, latent_dim=K, visual_dim=KV, item_features=FEATURES, n_time_epochs=T, **l2)
    p = hand_set(model)
    users, pos, neg, epoch = np.array([0, 1]), np.array([1, 2]), np.array([0, 1]), np.array([2, 0])
    x = np.stack([numpy_scores(p, FEATURES, t) for t in range(T)])  # [T, U, I]
    x_ui, x_uj = x[epoch, users, pos], x[epoch, users, neg]
    per_triplet = (
        np.log1p(np.exp(-(x_ui - x_uj)))
        + 0.1 / 2 * (np.sum(p["gamma_user"][users] ** 2, 1) + np.sum(p["gamma_item"][pos] ** 2, 1)
                     + np.sum(p["gamma_item"][neg] ** 2, 1))
        + 0.2 / 2 * (p["beta_item"][pos] ** 2 + p["beta_item"][neg] ** 2)
        + 0.3 / 2 * np.sum(p["theta_user"][users] ** 2, 1))
    shared = 0.05 / 2 * sum(np.sum(v ** 2) for v in (
        p["E"], p["beta_visual"], p["delta_E"], p["delta_beta"], p["w"] - 1, p["b"] - 1))
    expected = np.mean(per_triplet) + shared
    batch = {"user": users, "pos_item": pos, "neg_item": neg, "epoch": epoch}
    batch = {key: tf.constant(value, tf.int32) for key, value in batch.items()}
    assert float(model.compute_loss(batch)) == pytest.approx(expected, rel=1e-5)
    assert float(model.task.pairwise_accuracy.result()) == np.mean(x_ui > x_uj)


def test_tvbpr_at_identity_weights_is_vbpr():
    vbpr = VBPR(U, I, latent_dim=K, visual_dim=KV, item_features=FEATURES, l2_embedding=0.1)
    tvbpr = VBPR(U, I, latent_dim=K, visual_dim=KV, item_features=FEATURES, n_time_epochs=T,
                 l2_embedding=0.1)
    hand_set(vbpr)
    for key, value in vbpr.parameters().items():  # w = b = 1 and no drift, as initialised
        variable = {"gamma_user": tvbpr.gamma_user.embeddings, "beta_item": tvbpr.beta_item,
                    "gamma_item": tvbpr.gamma_item.embeddings, "E": tvbpr.embedding_kernel,
                    "theta_user": tvbpr.theta_user.embeddings, "beta_visual": tvbpr.visual_bias,
                    }[key]
        if key == "beta_item":
            variable, value = variable.embeddings, value[:, None]
        variable.assign(value)
    for t in range(T):
        np.testing.assert_allclose(tvbpr.score(tf.range(U), epoch=t), vbpr.score(tf.range(U)),
                                   rtol=1e-6, atol=1e-6)
    batch = {"user": tf.constant([0, 1]), "pos_item": tf.constant([1, 2]),
             "neg_item": tf.constant([0, 0]), "epoch": tf.constant([2, 1])}
    assert float(tvbpr.compute_loss(batch)) == pytest.approx(float(vbpr.compute_loss(batch)),
                                                             rel=1e-6)


def test_embed_items_is_item_vectors_without_beta_and_gamma():
    model = VBPR(U, I, latent_dim=K, visual_dim=KV, item_features=FEATURES, n_time_epochs=T)
    hand_set(model)
    for epoch in (0, None):
        expected = model.item_vectors(epoch).numpy()
        expected[:, :1 + K] = 0.0  # a new item has no beta_i, gamma_i
        np.testing.assert_allclose(model.embed_items(FEATURES, epoch), expected, rtol=1e-6)


# ---------------------------------------------------------------------------- cold start
N_USERS, N_ITEMS, N_COLD, N_COLOURS, N_NOISE = 60, 80, 20, 4, 4
N_WARM = N_ITEMS - N_COLD


def colour_world(seed=0):
    """80 items whose features are a one-hot colour (4) and 4 noise dims; each user likes 1-2
    colours. The last 20 items (5 per colour) are cold: in no training interaction and not in
    the models."""
    rng = np.random.default_rng(seed)
    colour = np.arange(N_ITEMS) % N_COLOURS
    features = np.concatenate([np.eye(N_COLOURS)[colour],
                               rng.normal(0.0, 1.0, (N_ITEMS, N_NOISE))], axis=1)
    cold = np.arange(N_ITEMS) >= N_WARM
    likes = np.zeros((N_USERS, N_COLOURS), bool)
    for u in range(N_USERS):
        likes[u, rng.choice(N_COLOURS, rng.integers(1, 3), replace=False)] = True
    liked = likes[:, colour]
    train = np.zeros((N_USERS, N_ITEMS), bool)
    for u in range(N_USERS):
        warm = rng.permutation(np.flatnonzero(liked[u] & ~cold))
        train[u, warm[: len(warm) * 2 // 3]] = True
    # Held out: every liked item not trained on (all liked cold ones), so the oracle has AUC 1.
    return SimpleNamespace(features=features.astype(np.float32), cold=cold, train=train,
                           test=liked & ~train)


def train_on_colours(world, **visual):
    tf.keras.utils.set_random_seed(0)
    model = VBPR(N_USERS, N_WARM, latent_dim=8, l2_latent=1e-3, l2_bias=1e-3, **visual)
    model.compile(tf.keras.optimizers.Adam(0.02))
    sampler = BprTripletSampler(world.train[:, :N_WARM], seed=0)
    history = model.fit(bpr_dataset(sampler, batch_size=64, seed=0), epochs=15, verbose=0)
    return model, history.history


def warm_and_cold_aucs(world, model):
    warm = model.item_vectors().numpy()
    # A new item's vector from its features; BPR-MF knows nothing of it (beta = gamma = 0).
    cold = (model.embed_items(world.features[N_WARM:]).numpy() if model.has_visual
            else np.zeros((N_COLD, warm.shape[1]), np.float32))
    users, items = model.user_vectors().numpy(), np.concatenate([warm, cold])
    return [per_user_auc_from_embeddings(users, items, world.test, world.train, item_mask=mask)
            for mask in (~world.cold, world.cold)]


@pytest.fixture(scope="module")
def colours():
    world = colour_world()
    bpr_mf, _ = train_on_colours(world)
    vbpr, history = train_on_colours(world, visual_dim=4, item_features=world.features[:N_WARM],
                                     l2_visual=1e-3, l2_embedding=1e-3)
    return SimpleNamespace(world=world, bpr_mf=bpr_mf, vbpr=vbpr, history=history,
                           bpr_mf_aucs=warm_and_cold_aucs(world, bpr_mf),
                           vbpr_aucs=warm_and_cold_aucs(world, vbpr))


def test_vbpr_ranks_cold_items_from_their_features(colours):
    (mf_warm, mf_cold), (v_warm, v_cold) = colours.bpr_mf_aucs, colours.vbpr_aucs
    print(f"colour world AUC: BPR-MF warm {mf_warm:.3f} cold {mf_cold:.3f}; "
          f"VBPR warm {v_warm:.3f} cold {v_cold:.3f}")
    assert mf_warm > 0.9 and v_warm > 0.9
    assert mf_cold == 0.5  # every cold item ties
    assert v_cold > 0.85  # never trained on: ranked by its colour alone
    assert colours.history["pairwise_accuracy"][-1] > 0.9
    assert colours.history["loss"][-1] < colours.history["loss"][0]


# ---------------------------------------------------------------------------- time
N_TIMED_ITEMS, PER_EPOCH = 60, 6
RISING, FALLING = (0.05, 0.3, 0.6), (0.6, 0.3, 0.05)  # share of each epoch's interactions


def trend_world(seed=0):
    """Over 3 epochs colour 0 comes into fashion and colour 1 goes out (ups and downs); the rest
    of a user's interactions are their own colour (2 or 3). Half of the last epoch's interactions
    are held out. Each (user, item) happens once, at one epoch."""
    rng = np.random.default_rng(seed)
    colour = np.arange(N_TIMED_ITEMS) % 4
    features = np.concatenate([np.eye(4)[colour], rng.normal(0.0, 1.0, (N_TIMED_ITEMS, 2))], 1)
    own = rng.integers(2, 4, N_USERS)
    rows = []
    for u in range(N_USERS):
        seen = set()
        for t in range(T):
            for draw in rng.random(PER_EPOCH):
                c = 0 if draw < RISING[t] else 1 if draw < RISING[t] + FALLING[t] else own[u]
                item = rng.choice([i for i in np.flatnonzero(colour == c) if i not in seen])
                seen.add(item)
                rows.append((u, item, t))
    rows = np.array(rows)
    last = np.flatnonzero(rows[:, 2] == T - 1)
    held = last[rng.random(len(last)) < 0.5]
    train_rows = np.delete(rows, held, axis=0)
    train, test = np.zeros((2, N_USERS, N_TIMED_ITEMS), bool)
    train[train_rows[:, 0], train_rows[:, 1]] = True
    test[rows[held, 0], rows[held, 1]] = True
    return SimpleNamespace(features=features.astype(np.float32), colour=colour,
                           train_rows=train_rows, train=train, test=test)


def timed_triplets(world, n, seed=0):
    """n BPR triplets with the epoch of their positive; negatives uniform over non-positives."""
    rng = np.random.default_rng(seed)
    users, positives, epochs = world.train_rows[rng.integers(len(world.train_rows), size=n)].T
    negatives = rng.integers(N_TIMED_ITEMS, size=n)
    while (bad := world.train[users, negatives]).any():
        negatives[bad] = rng.integers(N_TIMED_ITEMS, size=bad.sum())
    return {"user": users, "pos_item": positives, "neg_item": negatives, "epoch": epochs}


def train_on_trends(world, n_time_epochs):
    tf.keras.utils.set_random_seed(0)
    l2 = {name: 1e-3 for name in ("l2_latent", "l2_bias", "l2_visual", "l2_embedding")}
    model = VBPR(N_USERS, N_TIMED_ITEMS, latent_dim=4, visual_dim=4, item_features=world.features,
                 n_time_epochs=n_time_epochs, **l2)
    model.compile(tf.keras.optimizers.Adam(0.02))
    triplets = timed_triplets(world, 20 * len(world.train_rows))
    dataset = tf.data.Dataset.from_tensor_slices(
        {key: value.astype(np.int32) for key, value in triplets.items()}).batch(64)
    model.fit(dataset, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def trends():
    world = trend_world()
    return SimpleNamespace(world=world, vbpr=train_on_trends(world, 1),
                           tvbpr=train_on_trends(world, T))


def test_tvbpr_learns_the_rise_and_fall(trends):
    world, model = trends.world, trends.tvbpr
    p = model.parameters()
    visual_bias = p["beta_visual"] * p["b"] + p["delta_beta"]  # beta'(t), [T, F]
    mean_score = np.stack([model.score(tf.range(N_USERS), epoch=t).numpy() for t in range(T)])
    rising = mean_score[:, :, world.colour == 0].mean(axis=(1, 2))
    falling = mean_score[:, :, world.colour == 1].mean(axis=(1, 2))
    print(f"trend world beta'(t).h(rising) {np.round(visual_bias[:, 0], 2)}, "
          f".h(falling) {np.round(visual_bias[:, 1], 2)}; mean scores {np.round(rising, 2)} / "
          f"{np.round(falling, 2)}")
    assert visual_bias[0, 0] < visual_bias[1, 0] < visual_bias[2, 0]
    assert visual_bias[0, 1] > visual_bias[1, 1] > visual_bias[2, 1]
    assert rising[0] + 1.0 < rising[2] and falling[0] > falling[2] + 1.0


def test_tvbpr_ranks_the_last_epoch_better_than_vbpr(trends):
    world = trends.world

    def auc(model):  # at the last epoch, "now"
        return per_user_auc_from_embeddings(model.user_vectors().numpy(),
                                            model.item_vectors().numpy(), world.test, world.train)

    vbpr, tvbpr = auc(trends.vbpr), auc(trends.tvbpr)
    print(f"trend world last-epoch AUC: VBPR {vbpr:.3f}, TVBPR {tvbpr:.3f}")
    assert tvbpr > vbpr + 0.05


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, message", [
    ({"latent_dim": -1}, "`latent_dim` must be >= 0. Received: latent_dim=-1"),
    ({"visual_dim": 0}, "`visual_dim` must be a positive integer. Received: visual_dim=0"),
    ({"n_time_epochs": 0}, "`n_time_epochs` must be a positive integer"),
    ({"feature_dim": 2.5}, r"`feature_dim` must be an integer. Received: feature_dim=2.5"),
    ({"l2_latent": -0.1}, r"`l2_latent` must be >= 0. Received: l2_latent=-0.1"),
    ({"n_time_epochs": 3}, r"needs item features .* n_time_epochs=3"),
    ({"latent_dim": 0}, "With `latent_dim`=0 the model needs item features"),
    ({"feature_dim": 4, "item_features": FEATURES}, r"shape \(n_items, feature_dim\)=\(3, 4\)"),
    ({"n_users": 0}, "`n_users` must be a positive integer. Received: n_users=0"),
    ({"n_items": True}, "`n_items` must be an integer. Received: n_items=True"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VBPR(**{"n_users": U, "n_items": I, **kwargs})


def test_bad_features_and_batches_are_named():
    model = VBPR(U, I, latent_dim=K, visual_dim=KV, feature_dim=F, n_time_epochs=T)
    with pytest.raises(ValueError, match=r"has no item features: pass item_features= .*"
                                         "set_item_features"):
        model.item_vectors()
    with pytest.raises(ValueError, match=r"\(n_items, feature_dim\)=\(3, 3\). Received: "
                                         r"shape=\(2, 3\)"):
        model.set_item_features(FEATURES[:2])
    with pytest.raises(ValueError, match="must be float. Received: dtype=int32"):
        model.set_item_features(FEATURES.astype(np.int32))
    with pytest.raises(ValueError, match="must be finite. Received: 1 NaN"):
        model.set_item_features(np.where(FEATURES == 2.0, np.nan, FEATURES))
    with pytest.raises(ValueError, match=r"Received: shape=\(3, 2\)"):
        model.embed_items(FEATURES[:, :2])
    model.set_item_features(FEATURES)
    with pytest.raises(ValueError, match=r"`epoch` must be an integer in \[0, n_time_epochs=3\). "
                                         "Received: epoch=3"):
        model.score(tf.constant([0]), epoch=3)
    batch = {"user": tf.constant([0]), "pos_item": tf.constant([1]), "neg_item": tf.constant([2])}
    with pytest.raises(ValueError, match=r"need an \"epoch\" column, .* Received keys: "
                                         r"\['neg_item', 'pos_item', 'user'\]"):
        model.compute_loss(batch)
    with pytest.raises(tf.errors.InvalidArgumentError, match="epoch >= n_time_epochs"):
        model.compute_loss({**batch, "epoch": tf.constant([T])})
    bpr_mf = VBPR(U, I)
    with pytest.raises(ValueError, match="is BPR-MF"):
        bpr_mf.set_item_features(FEATURES)
    with pytest.raises(ValueError, match="is BPR-MF"):
        bpr_mf.embed_items(FEATURES)


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kwargs", [
    {},
    {"latent_dim": 0, "visual_dim": 3, "feature_dim": F, "l2_visual": 0.5},
    {"latent_dim": 4, "item_features": FEATURES, "n_time_epochs": 5, "l2_embedding": 0.1,
     "name": "tvbpr"},
])
def test_config_round_trip_leaves_the_features_out(kwargs):
    model = VBPR(U, I, **kwargs)
    config = json.loads(json.dumps(model.get_config()))
    restored = VBPR.from_config(config)
    assert json.loads(json.dumps(restored.get_config())) == config
    assert "item_features" not in config and config["feature_dim"] == model.feature_dim
    assert [v.shape for v in restored.variables] == [v.shape for v in model.variables]
    if model.has_visual:
        with pytest.raises(ValueError, match="set_item_features"):
            restored.item_vectors()


def test_save_weights_restore_gives_identical_scores(trends, tmp_path):
    model, features = trends.tvbpr, trends.world.features
    path = str(tmp_path / "weights")
    model.save_weights(path)
    fresh = VBPR.from_config(json.loads(json.dumps(model.get_config())))
    fresh.set_item_features(features)  # data: not in the checkpoint
    users = tf.range(N_USERS)
    assert not np.allclose(fresh.score(users), model.score(users))
    fresh.load_weights(path).assert_existing_objects_matched()
    for epoch in range(T):
        np.testing.assert_array_equal(fresh.score(users, epoch), model.score(users, epoch))
    shapes = {tuple(shape) for _, shape in tf.train.list_variables(path)}
    assert features.shape not in shapes and (T, 4, features.shape[1]) in shapes


def test_set_item_features_replaces_values_in_place():
    model = VBPR(U, I, latent_dim=K, visual_dim=KV, item_features=FEATURES)
    hand_set(model)
    table = model.item_features
    assert id(table) not in {id(v) for v in model.variables}  # data, not a weight
    before = model.score(tf.constant([0])).numpy()
    model.set_item_features(FEATURES[::-1])
    assert model.item_features is table
    assert not np.allclose(model.score(tf.constant([0])), before)
