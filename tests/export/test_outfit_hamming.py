"""The outfit head's Hamming index (``index="hamming"``) on a toy binary-code outfit model whose
answers NumPy gives: the candidates are the ``rerank`` allowed items nearest to sign(q) by
Hamming distance (ties by lower row), re-scored exactly, for user-free codes (precomputed and
packed, as FHN) and for codes that depend on the customer (computed per request, as PAN); the
fresh-process answer, the recall the export describes, the parts' round trip with their codes,
and what is refused (k above the re-rank depth, a too-small depth, a model without codes)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.training.serving_parts import (OutfitCodes, OutfitParts, OutfitScorer,
                                                  load_parts, save_parts)
from tfrec_fashion_export.writer import export_parts
from tfrec_fashion_serving import contract, testing

SLOTS = ["top", "bottom", "shoes"]
N_PER_SLOT, F, E, K, RERANK = 40, 6, 3, 24, 12


class CodedToy(tf.Module):
    """b = sign(x P + [user-aware] u R); y = sum_{m<n} <b_m, b_n> / K + <u Q, sum_m b_m> / K, so
    y(outfit with c in slot t) = const + <q, b_c>, q = (sum_{m != t} b_m + u Q) / K."""

    def __init__(self, user_aware: bool):
        super().__init__()
        rng = np.random.default_rng(2)
        self.user_aware = user_aware
        self.p, self.r, self.q = (tf.Variable(rng.normal(size=shape).astype(np.float32))
                                  for shape in ((F, K), (E, K), (E, K)))

    def numpy_codes(self, user, items):
        x = items @ self.p.numpy() + (user @ self.r.numpy() if self.user_aware else 0.0)
        return np.where(x >= 0, 1.0, -1.0).astype(np.float32)

    def codes(self, user, items):
        x = tf.einsum("...f,fk->...k", items, self.p)
        if self.user_aware:
            x += tf.einsum("be,ek->bk", user, self.r)[:, None, :] if items.shape.rank == 3 \
                else tf.matmul(user, self.r)
        return tf.where(x >= 0, 1.0, -1.0)

    @tf.function
    def score(self, user, items):
        b = self.codes(user, items)  # [B, S, K]
        total = tf.reduce_sum(b, axis=1)
        pairs = (tf.reduce_sum(total * total, -1) - tf.reduce_sum(b * b, [1, 2])) / 2
        return (pairs + tf.reduce_sum(tf.matmul(user, self.q) * total, -1)) / K

    @tf.function
    def item_codes(self, user, items, slot):
        del slot  # one code space for every slot
        return self.codes(user, items)

    @tf.function
    def query(self, user, items, blank):
        b = self.codes(user, items)
        others = tf.cast(tf.not_equal(tf.range(len(SLOTS))[None, :], blank[:, None]), tf.float32)
        return (tf.einsum("bsk,bs->bk", b, others) + tf.matmul(user, self.q)) / K

    def numpy_score(self, user, items):
        b = self.numpy_codes(user[:, None, :], items)
        total = b.sum(1)
        pairs = ((total * total).sum(-1) - (b * b).sum((1, 2))) / 2
        return (pairs + ((user @ self.q.numpy()) * total).sum(-1)) / K


def _parts(model, codes=True):
    rng = np.random.default_rng(0)
    categories = np.repeat(SLOTS, N_PER_SLOT)
    variables = list(model.variables)
    return OutfitParts(
        user_ids=np.array(["u0", "u1", "u2"]), user_vectors=rng.normal(size=(3, E)),
        item_ids=np.array([f"i{n:03d}" for n in range(len(categories))]),
        item_categories=categories, item_vectors=rng.normal(size=(len(categories), F)),
        slots=SLOTS, scorer=OutfitScorer(
            E, F, len(SLOTS), model.score, variables,
            OutfitCodes(K, model.item_codes, model.query, not model.user_aware, variables)
            if codes else None),
        info={"model": "coded_toy"})


def _expected(model, parts, user, outfit, column, k, excluded=()):
    """NumPy: the RERANK allowed items nearest sign(q) by Hamming (stable), then exact scores."""
    rows = [list(parts.item_ids).index(i) for i in outfit]
    items = parts.item_vectors[rows]
    b = model.numpy_codes(user[None, :], items)
    others = [c for c in range(len(SLOTS)) if c != column]
    query = (b[others].sum(0) + user @ model.q.numpy()) / K
    candidates = np.array([n for n in range(len(parts.item_ids))
                           if parts.item_categories[n] == SLOTS[column]
                           and n != rows[column] and parts.item_ids[n] not in excluded])
    codes = model.numpy_codes(user[None, :], parts.item_vectors[candidates])
    distances = (codes != np.where(query >= 0, 1.0, -1.0)).sum(-1)
    nearest = candidates[np.argsort(distances, kind="stable")[:RERANK]]
    filled = np.repeat(items[None], len(nearest), 0)
    filled[:, column] = parts.item_vectors[nearest]
    scores = model.numpy_score(np.repeat(user[None], len(nearest), 0), filled)
    order = np.argsort(-scores, kind="stable")[:k]
    return parts.item_ids[nearest[order]], scores[order], len(candidates)


@pytest.mark.parametrize("user_aware", [False, True], ids=["user_free", "per_customer"])
def test_a_fresh_process_answers_with_the_nearest_codes_rescored(user_aware, tmp_path, capsys,
                                                                 assert_close):
    model = CodedToy(user_aware)
    parts = _parts(model)
    version = export_parts(parts, tmp_path, "coded_toy", index="hamming",
                           index_params={"rerank": RERANK})
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    index = info["index"]
    assert index["kind"] == "hamming" and index["bits"] == K and index["rerank"] == RERANK
    assert ("precomputed" in index["codes"]) != user_aware
    assert 0.0 <= index["recall_at_10"]["recall"] <= 1.0
    assert "hamming index: 24-bit codes" in capsys.readouterr().out
    outfits = [["i000", "i040", "i080"], ["i005", "i047", "i099"]]
    requests = {"fill_in_the_blank": {
        "user_id": contract.string_array(["u0", "u2"]),
        "item_ids": contract.string_array(outfits),
        "blank_slot": contract.string_array(["bottom", "shoes"]),
        "k": np.array([5, 10], np.int32),
        "exclude_item_ids": contract.string_array([["i041"], [""]])}}
    answers, imported = testing.answers_in_fresh_process(str(version), requests)
    assert imported == []
    filled = answers["fill_in_the_blank"]
    for row, (user, column, k, excluded) in enumerate(((0, 1, 5, ["i041"]), (2, 2, 10, []))):
        ids, scores, n_candidates = _expected(model, parts, parts.user_vectors[user],
                                              outfits[row], column, k, excluded)
        assert n_candidates > RERANK  # the index prunes: most candidates are never scored
        np.testing.assert_array_equal(filled["item_ids"][row, :k].astype(str), ids)
        assert_close(filled["scores"][row, :k], scores, ulps=64, scale=np.abs(scores).max())
    replayed = testing.replay_warmup(version)
    assert sorted(replayed) == ["fill_in_the_blank", "score_outfit"]


def test_the_recall_against_exact_scores_is_what_the_hamming_ranking_keeps(tmp_path):
    """With every candidate re-ranked the index is exact; with fewer it is measured, not
    assumed: the recall lies strictly between a random pick's and 1 on this toy."""
    model = CodedToy(user_aware=True)
    parts = _parts(model)
    from tfrec_fashion_export.outfits import OutfitModule

    everything = OutfitModule(parts, "hamming", {"rerank": 3 * N_PER_SLOT})
    assert everything.recall_against_exact(parts, queries=40)["recall"] == 1.0
    pruned = OutfitModule(parts, "hamming", {"rerank": RERANK})
    recall = pruned.recall_against_exact(parts, queries=40)["recall"]
    assert 10 / N_PER_SLOT < recall < 1.0


def test_the_codes_round_trip_through_a_run_directory(tmp_path, assert_close):
    model = CodedToy(user_aware=True)
    parts = _parts(model)
    save_parts(parts, tmp_path / "serving")
    back = load_parts(tmp_path)
    assert back.scorer.codes.bits == K and back.scorer.codes.user_free is False
    user = tf.constant(parts.user_vectors[:2], tf.float32)
    items = tf.constant(parts.item_vectors[[[0, 40, 80], [1, 41, 81]]], tf.float32)
    blank = tf.constant([0, 2])
    assert_close(back.scorer.codes.query(user, items, blank).numpy(),
                 parts.scorer.codes.query(user, items, blank).numpy())
    np.testing.assert_array_equal(
        back.scorer.codes.item_codes(user, items[:, 0], blank).numpy(),
        model.numpy_codes(parts.user_vectors[:2], parts.item_vectors[[0, 1]]))


def test_what_the_hamming_index_refuses(tmp_path):
    model, per_customer = CodedToy(user_aware=False), CodedToy(user_aware=True)
    with pytest.raises(ValueError, match="has no binary codes"):
        export_parts(_parts(model, codes=False), tmp_path, "toy", index="hamming")
    with pytest.raises(ValueError, match="rerank must be an integer >= 10"):
        export_parts(_parts(model), tmp_path, "toy", index="hamming",
                     index_params={"rerank": 5})
    with pytest.raises(ValueError, match="takes only rerank"):
        export_parts(_parts(model), tmp_path, "toy", index="hamming",
                     index_params={"n_probe": 5})
    with pytest.raises(ValueError, match="re-rank more candidates"):
        export_parts(_parts(per_customer), tmp_path, "toy", index="hamming",
                     index_params={"rerank": RERANK}, min_recall=1.01)
    assert not (tmp_path / "toy" / "1").exists()
    version = export_parts(_parts(model), tmp_path, "toy", index="hamming",
                           index_params={"rerank": RERANK})
    served = tf.saved_model.load(str(version)).signatures["fill_in_the_blank"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"k must be at most {RERANK}, the re-rank depth of the Hamming"):
        served(user_id=tf.constant(["u0"]), item_ids=tf.constant([["i000", "", "i080"]]),
               blank_slot=tf.constant(["bottom"]), k=tf.constant([RERANK + 1]),
               exclude_item_ids=tf.zeros([1, 0], tf.string))
