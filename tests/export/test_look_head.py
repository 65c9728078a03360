"""The look head (complete the look, item to item) as a user drives it, on toy vectors and a toy
image path whose answers NumPy gives: export ``LookParts`` through the head's entry with the
exact and the partitioned index, ``similar`` and ``complementary`` in a fresh process without
project code against a NumPy cosine top-k, the parts round trip through a run directory, bad
requests INVALID_ARGUMENT naming the problem (in the graph and over our gRPC server with TF
Serving's own stubs), the SignatureDefs the contract's, stock ops, and the warm-up replaying."""

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.training.serving_parts import (ItemEmbedder, LookParts, load_parts,
                                                  save_parts)
from tfrec_fashion_export.writer import export_parts
from tfrec_fashion_serving import client, contract, testing
from tfrec_fashion_serving.servable import read_signature_defs

CATEGORIES = ["bottom", "shoes", "top"]
N_PER_CATEGORY, DS, DC, SIDE = 8, 5, 4, 4
IMAGE = tf.TensorSpec([None, SIDE, SIDE, 3], tf.float32, "image")


class ToyImagePath(tf.Module):
    """similar = mean colour @ A, style = flattened pixels @ B: linear, so NumPy answers."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(1)
        self.a = tf.Variable(rng.normal(size=(3, DS)).astype(np.float32))
        self.b = tf.Variable(rng.normal(size=(SIDE * SIDE * 3, DC)).astype(np.float32))

    @tf.function
    def similar(self, image):
        return tf.reduce_mean(image, axis=[1, 2]) @ self.a

    @tf.function
    def style(self, image):
        return tf.reshape(image, [-1, SIDE * SIDE * 3]) @ self.b

    def numpy_similar(self, image):
        return image.mean(axis=(1, 2)) @ self.a.numpy()

    def numpy_style(self, image):
        return image.reshape(len(image), -1) @ self.b.numpy()


def toy_parts(complements=None):
    rng = np.random.default_rng(0)
    path = ToyImagePath()
    categories = np.repeat(CATEGORIES, N_PER_CATEGORY)
    n = len(categories)
    parts = LookParts(
        item_ids=np.array([f"i{row:02d}" for row in range(n)]), item_categories=categories,
        similar_vectors=rng.normal(size=(n, DS)) * 3.0, style_vectors=rng.normal(size=(n, DC)),
        similar_embedder=ItemEmbedder("image", IMAGE, path.similar, path.variables),
        style_embedder=ItemEmbedder("image", IMAGE, path.style, path.variables),
        complements=complements, info={"model": "toy_look"})
    return path, parts


@pytest.fixture(scope="module")
def toy():
    return toy_parts({"top": ["bottom", "shoes"], "bottom": ["top"], "shoes": []})


@pytest.fixture(scope="module")
def base(toy, tmp_path_factory):
    """toy_look/1 brute force, toy_look/2 partitioned with defaults (exact at this size)."""
    _, parts = toy
    base = tmp_path_factory.mktemp("base")
    export_parts(parts, base, "toy_look")
    export_parts(parts, base, "toy_look", index="partitioned")
    return base


def unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def expected_top_k(vectors, query, allowed, k):
    """NumPy's cosine top-k of one query over the allowed rows: (rows, scores)."""
    scores = unit(vectors) @ unit(query[None])[0]
    rows = np.flatnonzero(allowed)
    order = rows[np.argsort(-scores[rows], kind="stable")][:k]
    return order, scores[order]


def assert_answer(answer, row, parts, vectors, query, allowed, k, assert_close):
    rows, scores = expected_top_k(vectors, query, allowed, k)
    got = answer["item_ids"][row].astype(str)
    np.testing.assert_array_equal(got[:len(rows)], parts.item_ids[rows])
    assert (got[len(rows):] == "").all() and np.isneginf(answer["scores"][row, len(rows):]).all()
    assert_close(answer["scores"][row, :len(rows)], scores, ulps=64, scale=1.0)


IMAGES = np.random.default_rng(2).random((3, SIDE, SIDE, 3)).astype(np.float32)
REQUESTS = {
    # rows: a catalogue top; a catalogue shoe searched in "top" with i17 excluded; a new bottom
    # (k 10 of 8 bottoms: padded)
    "similar": contract.look_inputs(["i17", "i08", ""], IMAGES, [4, 3, 10],
                                    ["", "top", "bottom"], exclude=[["i18"], ["i17"], [""]]),
    # a top (bottoms and shoes complete it), a bottom asked for shoes, a new bottom (tops)
    "complementary": contract.look_inputs(["i16", "i02", ""], IMAGES, [6, 2, 4],
                                          ["", "shoes", ""], ["", "", "bottom"],
                                          exclude=[["i03"], [""], [""]]),
}


def check_answers(answers, path, parts, assert_close):
    category = parts.item_categories
    row_of = {item: row for row, item in enumerate(parts.item_ids)}
    similar = answers["similar"]
    image_similar = path.numpy_similar(IMAGES)
    for row, (query, allowed, k) in enumerate((
            (parts.similar_vectors[17], (category == "top") & ~np.isin(parts.item_ids,
                                                                      ["i17", "i18"]), 4),
            (parts.similar_vectors[8], (category == "top") & (parts.item_ids != "i17"), 3),
            (image_similar[2], category == "bottom", 10))):
        assert_answer(similar, row, parts, parts.similar_vectors, query, allowed, k,
                      assert_close)
    complementary = answers["complementary"]
    image_style = path.numpy_style(IMAGES)
    for row, (query, allowed, k) in enumerate((
            (parts.style_vectors[16], np.isin(category, ["bottom", "shoes"])
             & (parts.item_ids != "i03"), 6),
            (parts.style_vectors[2], category == "shoes", 2),
            (image_style[2], category == "top", 4))):
        assert_answer(complementary, row, parts, parts.style_vectors, query, allowed, k,
                      assert_close)
    assert row_of["i16"] not in complementary["item_ids"][0]


def test_the_export_follows_the_contract_and_describes_itself(base):
    version = base / "toy_look" / "1"
    defs = read_signature_defs(str(version))
    for signature in contract.LOOK.signatures:
        assert contract.differences(signature, defs[signature.name]) == []
    assert contract.differences(contract.COMPLEMENTARY, defs[contract.SERVING_DEFAULT]) == []
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    assert info["head"] == "look" and info["image_shape"] == [SIDE, SIDE, 3]
    assert info["complements"]["top"] == ["bottom", "shoes"]
    assert info["ops"]["non_stock"] == []  # export refuses otherwise; stock TF Serving loads it
    described = json.loads((base / "toy_look" / "2" / contract.DESCRIPTION_FILE).read_text())
    assert described["ops"]["non_stock"] == []
    assert described["index"]["similar"]["recall_at_10"]["self_excluded"] == 1.0


@pytest.mark.parametrize("version", [1, 2], ids=["brute_force", "partitioned"])
def test_a_fresh_process_answers_as_numpy_cosine_top_k(toy, base, version, assert_close):
    path, parts = toy
    answers, imported = testing.answers_in_fresh_process(str(base / "toy_look" / str(version)),
                                                        REQUESTS)
    assert imported == []
    check_answers(answers, path, parts, assert_close)


def test_a_forced_approximate_index_reports_recall_and_honours_min_recall(toy, tmp_path,
                                                                          capsys, assert_close):
    path, parts = toy
    forced = {"n_partitions": 6, "n_probe": 1, "quantization": "none"}
    version = export_parts(parts, tmp_path, "toy_look", index="partitioned",
                           index_params=forced)
    printed = capsys.readouterr().out
    assert "similar: partitioned index" in printed and "complementary: partitioned" in printed
    index = json.loads((version / contract.DESCRIPTION_FILE).read_text())["index"]
    assert index["kind"] == "partitioned" and index["similar"]["n_probe"] == 1
    recall = index["complementary"]["recall_at_10"]
    assert recall["queries"] == len(parts.item_ids) and 0.0 < recall["any_category"] < 1.0
    with pytest.raises(ValueError, match="below min_recall"):
        export_parts(parts, tmp_path, "toy_look", index="partitioned", index_params=forced,
                     min_recall=0.999)
    assert sorted(p.name for p in (tmp_path / "toy_look").iterdir()) == ["1"]
    # Approximate: a fresh process answers as the exporting one; the categories and
    # exclusions still hold, and scores are exact cosines.
    model = tf.saved_model.load(str(version))
    here = {signature: {name: value.numpy() for name, value in model.signatures[signature](
        **{key: tf.constant(array) for key, array in inputs.items()}).items()}
        for signature, inputs in REQUESTS.items()}
    fresh, _ = testing.answers_in_fresh_process(str(version), REQUESTS)
    for signature, answer in here.items():
        np.testing.assert_array_equal(fresh[signature]["item_ids"], answer["item_ids"])
        assert_close(fresh[signature]["scores"], answer["scores"], scale=1.0)
    answer = here["complementary"]
    ids = answer["item_ids"].astype(str)
    category_of = dict(zip(parts.item_ids, parts.item_categories))
    assert {category_of[i] for i in ids[0] if i} <= {"bottom", "shoes"} and "i03" not in ids[0]
    row_of = {item: row for row, item in enumerate(parts.item_ids)}
    found = [row_of[i] for i in ids[0] if i]
    assert_close(answer["scores"][0, :len(found)],
                 unit(parts.style_vectors)[found] @ unit(parts.style_vectors[16:17])[0],
                 ulps=64, scale=1.0)


def test_the_parts_round_trip_through_a_run_directory(toy, tmp_path, assert_close):
    _, parts = toy
    save_parts(parts, tmp_path / "serving")
    back = load_parts(tmp_path)
    assert isinstance(back, LookParts) and back.complements == parts.complements
    assert back.image_shape == [SIDE, SIDE, 3]
    np.testing.assert_array_equal(back.item_ids, parts.item_ids)
    np.testing.assert_array_equal(back.style_vectors, parts.style_vectors)
    images = tf.constant(IMAGES)
    for name in ("similar_embedder", "style_embedder"):
        assert_close(getattr(back, name).embed(images).numpy(),
                     getattr(parts, name).embed(images).numpy())
    assert toy_parts()[1].complements["top"] == ["bottom", "shoes"]  # default: every other


def test_parts_refuse_what_cannot_serve():
    path, parts = toy_parts()
    with pytest.raises(ValueError, match="style_vectors must be"):
        LookParts(parts.item_ids, parts.item_categories, parts.similar_vectors,
                  parts.style_vectors[:3])
    with pytest.raises(ValueError, match="zero rows"):
        LookParts(parts.item_ids, parts.item_categories, parts.similar_vectors,
                  np.zeros_like(parts.style_vectors))
    with pytest.raises(ValueError, match="both similar_embedder and style_embedder"):
        LookParts(parts.item_ids, parts.item_categories, parts.similar_vectors,
                  parts.style_vectors, similar_embedder=parts.similar_embedder)
    with pytest.raises(ValueError, match="no item has"):
        LookParts(parts.item_ids, parts.item_categories, parts.similar_vectors,
                  parts.style_vectors, complements={"top": ["hats"]})


BAD = [
    ("similar", {"item_id": ["nope"]}, "similar: unknown item_id"),
    ("similar", {"item_id": ["i00"], "category": ["hats"]}, "unknown category; the categories "
     "are bottom, shoes, top"),
    ("similar", {"item_id": [""], "image": np.zeros((1, SIDE, SIDE + 1, 3), np.float32),
                 "category": ["top"]}, r"image must be \[B, 4, 4, 3\]"),
    ("similar", {"item_id": [""], "image": np.full((1, SIDE, SIDE, 3), 255.0, np.float32),
                 "category": ["top"]}, r"image values must lie in \[0, 1\]"),
    ("similar", {"item_id": [""], "image": IMAGES[:1]}, "an image query needs its category"),
    ("similar", {"item_id": [""]}, "a row with an empty item_id needs an image"),
    ("similar", {"item_id": ["i00"], "k": [0]}, r"k must be in \[1, 24\]"),
    ("complementary", {"item_id": ["i00"], "k": [25]}, r"k must be in \[1, 24\]"),
    ("complementary", {"item_id": ["nope"]}, "complementary: unknown item_id"),
    ("complementary", {"item_id": [""], "image": IMAGES[:1]},
     "an image anchor needs its item_category"),
    ("complementary", {"item_id": ["i00"], "item_category": ["top"]},
     "item_category differs from the category of item_id"),
    ("complementary", {"item_id": ["i08"]}, "has no complementary category"),  # shoes: none
]


@pytest.mark.parametrize("signature, change, message", BAD,
                         ids=[f"{s}-{m[:30]}" for s, _, m in BAD])
def test_bad_requests_fail_in_the_graph_naming_the_problem(base, signature, change, message):
    model = tf.saved_model.load(str(base / "toy_look" / "1"))
    declared = contract.LOOK[signature]
    inputs = {tensor.name: tensor.default_tensor() for tensor in declared.inputs}
    inputs.update({name: tf.constant(value) for name, value in change.items()})
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.signatures[signature](**inputs)


def test_a_model_without_an_image_path_refuses_images(tmp_path):
    _, parts = toy_parts()
    plain = LookParts(parts.item_ids, parts.item_categories, parts.similar_vectors,
                      parts.style_vectors)
    version = export_parts(plain, tmp_path, "plain_look")
    assert sorted(testing.replay_warmup(version)) == ["complementary", "similar"]
    model = tf.saved_model.load(str(version))
    inputs = {tensor.name: tensor.default_tensor() for tensor in contract.SIMILAR.inputs}
    answer = model.signatures["similar"](**{**inputs, "item_id": tf.constant(["i00"])})
    assert answer["item_ids"].shape == (1, contract.DEFAULT_K)
    with pytest.raises(tf.errors.InvalidArgumentError, match="this model has no image path"):
        model.signatures["similar"](**{**inputs, "item_id": tf.constant(["i00"]),
                                       "image": tf.constant(IMAGES),
                                       "category": tf.constant(["top"])})


def test_warmup_replays_and_our_server_answers_the_official_client(toy, base, assert_close,
                                                                    capsys):
    from tfrec_fashion_serving.server import start_server

    path, parts = toy
    version = base / "toy_look" / "2"
    assert sorted(testing.replay_warmup(version)) == ["complementary", "similar"]
    with start_server(str(base / "models.config"), port=0) as server:
        server.wait_until_available("toy_look", timeout=120, version=2)
        target = f"127.0.0.1:{server.port}"
        default = client.predict(target, "toy_look", {"item_id": contract.string_array(["i16"])})
        assert default["item_ids"].shape == (1, contract.DEFAULT_K)  # complementary, k = 10
        answers = {
            "similar": client.similar(target, "toy_look", ["i17", "i08", ""], IMAGES, [4, 3, 10],
                                      ["", "top", "bottom"],
                                      exclude=[["i18"], ["i17"], [""]]),
            "complementary": client.complementary(target, "toy_look", ["i16", "i02", ""],
                                                  IMAGES, [6, 2, 4], ["", "shoes", ""],
                                                  ["", "", "bottom"],
                                                  exclude=[["i03"], [""], [""]]),
        }
        assert answers["similar"]["version"] == 2
        check_answers(answers, path, parts, assert_close)
        assert client.main(["--server", target, "--model", "toy_look", "--item", "i16",
                            "--look", "similar", "--k", "2"]) == 0
        printed = capsys.readouterr().out.splitlines()
        best = expected_top_k(parts.similar_vectors, parts.similar_vectors[16],
                              (parts.item_categories == "top") & (parts.item_ids != "i16"), 2)[0]
        assert printed[0] == "model toy_look version 2 signature similar"
        assert [line.split()[2] for line in printed[2:]] == list(parts.item_ids[best])
        # More rows than the server runs at once: the defaults (no image) go to every chunk.
        many = client.similar(target, "toy_look", list(parts.item_ids) * 13, k=3)
        assert many["item_ids"].shape == (13 * len(parts.item_ids), 3)
        np.testing.assert_array_equal(many["item_ids"][-1], many["item_ids"][23])
        for signature, inputs, message in (
                ("similar", {"item_id": ["nope"]}, "unknown item_id"),
                ("similar", {"item_id": [""], "category": ["top"],
                             "image": np.full((1, SIDE, SIDE, 3), 2.0, np.float32)},
                 "image values must lie in [0, 1]"),
                ("complementary", {"item_id": [""], "item_category": ["top"],
                                   "image": np.zeros((1, 8, 8, 3), np.float32)},
                 "image must be [B, 4, 4, 3]"),
                ("complementary", {"item_id": ["i00"], "category": ["hats"]},
                 "unknown category")):
            with pytest.raises(grpc.RpcError) as error:
                client.predict(target, "toy_look",
                               {name: contract.string_array(value) if name != "image" else value
                                for name, value in inputs.items()}, signature=signature)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in error.value.details()
