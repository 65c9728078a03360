"""StyNet on tiny hand-made inputs: config round trip, variables before data, the target's own
vote left out of the history, the feature path for unknown ids (cold start), and the loss as
known values (the paper's MSE plus the retrieval head's softmax over E_c . M_i)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.models.stynet import StyNet

KWARGS = {"n_users": 5, "n_items": 7, "user_feature_vocab_sizes": [3, 2],
          "item_feature_vocab_sizes": [3, 4], "visual_dim": 4, "embedding_dim": 6,
          "id_embedding_dim": 5, "feature_embedding_dim": 3, "hidden_units": 8,
          "history_length": 4, "id_dropout": 0.0, "retrieval_weight": 0.5, "l2": 0.0}


ITEM_CODES = np.array([[0, 1], [0, 3], [1, 2], [2, -1], [0, 0], [1, 1], [2, 3]], np.int32)


def batch(**changes):
    """Four rows: customers 0..3 rating items 1, 2, 3, 4 (scaled ratings in [0, 1])."""
    rng = np.random.default_rng(0)
    features = {
        "user": np.array([0, 1, 2, 3], np.int32),
        "user_features": np.array([[0, 1], [2, 0], [1, -1], [0, 0]], np.int32),
        "history_item": np.array([[1, 5, 6, -1], [0, 2, -1, -1], [4, 6, 0, 1], [-1] * 4],
                                 np.int32),
        "history_value": np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0] * 4],
                                  np.float32),
        "item": np.array([1, 2, 3, 4], np.int32),
        "item_features": ITEM_CODES[[1, 2, 3, 4]],
        "item_visual": rng.normal(size=(4, 4)).astype(np.float32),
        "rating": np.array([1.0, 0.0, 1.0, 0.75], np.float32),
    }
    features.update(changes)
    features["history_item_features"] = ITEM_CODES[np.maximum(features["history_item"], 0)]
    return features


def test_config_round_trips_and_the_copy_predicts_the_same():
    model = StyNet(**KWARGS)
    config = model.get_config()
    again = StyNet.from_config(json.loads(json.dumps(config)))
    assert json.dumps(again.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict_rating(batch()), model.predict_rating(batch()),
                               atol=1e-6)
    restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(
        model))
    assert isinstance(restored, StyNet) and restored.get_config() == config


def test_every_variable_exists_before_data_so_checkpoints_restore(tmp_path):
    model = StyNet(**KWARGS)
    assert model.built
    assert len(model.trainable_variables) == 5 + 2 * 5  # 5 embedding tables, 5 dense layers
    names = {layer.name for layer in model.layers if layer.weights}
    assert names == {"user_id_embedding", "user_feature_embedding", "item_vote_embedding",
                     "customer_embedding", "item_id_embedding", "item_feature_embedding",
                     "visual_projection", "item_embedding", "rating_hidden", "rating"}
    model.save_weights(str(tmp_path / "weights"))
    fresh = StyNet(**KWARGS)  # never called on data
    fresh.load_weights(str(tmp_path / "weights")).assert_consumed()
    np.testing.assert_allclose(fresh.predict_rating(batch()), model.predict_rating(batch()))


def test_the_target_items_own_vote_is_left_out_of_the_history():
    model = StyNet(**KWARGS)
    # Row 0 rates item 1, and item 1 sits in its history with vote 1: flipping that vote
    # must not move the prediction, flipping another item's vote must.
    flipped_target = batch()["history_value"].copy()
    flipped_target[0, 0] = 0.0
    flipped_other = batch()["history_value"].copy()
    flipped_other[0, 2] = 0.0
    base = model.predict_rating(batch()).numpy()
    np.testing.assert_allclose(model.predict_rating(batch(history_value=flipped_target)), base,
                               atol=1e-7)
    assert abs(model.predict_rating(batch(history_value=flipped_other)).numpy()[0]
               - base[0]) > 1e-6
    # The customer's embedding (no target given) reads the whole history.
    customer = {k: v for k, v in batch().items() if k != "item"}
    changed = model.customer_embeddings({**customer, "history_value": flipped_target}).numpy()
    assert np.abs(changed[0] - model.customer_embeddings(customer).numpy()[0]).max() > 1e-6


def test_a_vote_carries_the_voted_items_attributes():
    model = StyNet(**KWARGS)
    customer = {k: v for k, v in batch().items() if k != "item"}
    other = customer["history_item_features"].copy()
    other[0, 1] = [2, 0]  # item 5, voted 0 by customer 0, now described as another item
    moved = model.customer_embeddings({**customer, "history_item_features": other}).numpy()
    base = model.customer_embeddings(customer).numpy()
    assert np.abs(moved[0] - base[0]).max() > 1e-6
    np.testing.assert_allclose(moved[1:], base[1:])


def test_unknown_ids_fall_back_to_the_feature_path():
    model = StyNet(**KWARGS)
    unknown = batch(user=np.full(4, -1, np.int32), item=np.full(4, -1, np.int32))
    customers = model.customer_embeddings(unknown).numpy()
    items = model.item_embeddings(unknown).numpy()
    assert np.isfinite(customers).all() and np.isfinite(items).all()
    assert np.isfinite(model.predict_rating(unknown).numpy()).all()
    # Only features speak: rewriting the id tables changes nothing for id -1 ...
    for table in (model.user_id_embedding, model.item_id_embedding):
        table.embeddings.assign(tf.random.normal(table.embeddings.shape))
    np.testing.assert_allclose(model.customer_embeddings(unknown), customers, atol=1e-6)
    np.testing.assert_allclose(model.item_embeddings(unknown), items, atol=1e-6)
    # ... and different answers and votes still give different customers.
    assert np.abs(customers[0] - customers[1]).max() > 1e-4
    # A customer with no answers and no votes gets the tower's bias alone.
    blank = batch(user=np.full(4, -1, np.int32), user_features=np.full((4, 2), -1, np.int32),
                  history_item=np.full((4, 4), -1, np.int32))
    np.testing.assert_allclose(model.customer_embeddings(blank),
                               np.tile(model.user_dense.bias.numpy(), (4, 1)), atol=1e-6)


def test_loss_is_the_rating_mse_plus_the_weighted_retrieval_softmax():
    model = StyNet(**KWARGS)
    features = batch()
    customer = model.customer_embeddings(features).numpy()
    items = model.item_embeddings(features).numpy()
    rating = model.predict_rating(features).numpy()
    # The retrieval head scores by the towers' dot product ...
    np.testing.assert_allclose(model.retrieval_score(features),
                               np.einsum("bd,bd->b", customer, items), rtol=1e-5, atol=1e-6)
    # ... and the loss is MSE + weight * mean over the batch of the softmax cross-entropy of
    # each positively rated row (rating > 0.5) against the batch's items.
    mse = np.mean((rating - features["rating"]) ** 2)
    logits = customer @ items.T
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    positive = features["rating"] > 0.5
    retrieval = -(np.diag(log_softmax) * positive).sum() / len(positive)
    expected = mse + KWARGS["retrieval_weight"] * retrieval
    assert float(model.compute_loss(features)) == pytest.approx(expected, rel=1e-5)
    no_retrieval = StyNet(**{**KWARGS, "retrieval_weight": 0.0})
    no_retrieval.set_weights(model.get_weights())
    assert float(no_retrieval.compute_loss(features)) == pytest.approx(mse, rel=1e-5)


def test_id_dropout_hides_ids_only_while_training():
    model = StyNet(**{**KWARGS, "id_dropout": 0.9, "retrieval_weight": 0.0})
    features = batch()
    evaluation = float(model.compute_loss(features, training=False))
    assert evaluation == pytest.approx(float(model.compute_loss(features, training=False)))
    tf.keras.utils.set_random_seed(0)
    training = [float(model.compute_loss(features, training=True)) for _ in range(5)]
    assert any(abs(value - evaluation) > 1e-6 for value in training)


def test_fit_lowers_the_loss_on_a_repeated_batch():
    model = StyNet(**KWARGS)
    model.compile(tf.keras.optimizers.Adam(0.05))
    data = tf.data.Dataset.from_tensors(batch()).repeat(30)
    history = model.fit(data, epochs=1, verbose=0)
    assert model.compute_loss(batch()) < 0.5 * StyNet(**KWARGS).compute_loss(batch())
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("change, message", [
    ({"n_users": 0}, "n_users=0"),
    ({"user_feature_vocab_sizes": [3, 0]}, r"user_feature_vocab_sizes=\[3, 0\]"),
    ({"visual_dim": 0}, "visual_dim=0"),
    ({"id_dropout": 1.0}, "id_dropout=1.0"),
    ({"retrieval_weight": -1.0}, "retrieval_weight=-1.0"),
])
def test_bad_arguments_say_what_was_received(change, message):
    with pytest.raises(ValueError, match=f"Received: .*{message}"):
        StyNet(**{**KWARGS, **change})


def test_a_model_of_ids_and_votes_alone_needs_no_feature_inputs():
    model = StyNet(n_users=5, n_items=7, use_visual_features=False, history_length=4)
    features = {key: batch()[key] for key in ("user", "item", "history_item", "history_value")}
    assert model.predict_rating(features).shape == (4,)
    assert np.isfinite(model.compute_loss({**features, "rating": batch()["rating"]}))
