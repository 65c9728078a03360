"""Export as a user drives it: train tiny BPR-MF / VBPR / DVBPR runs, export them, and load each
SavedModel in a fresh Python process that never imports tfrec_fashion (nor TFRS): its answers
must be the Keras model's (top-k ids identical, scores to the rounding of their dot products),
filters and cold start included. Plus the guarantees around the files: atomic versions,
models.config, warm-up records that replay, clear errors."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfrec_fashion.cli import main as cli_main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export import writer
from tfrec_fashion.training.serving_parts import load_parts
from tfrec_fashion_export.runs import export_run
from tfrec_fashion_export.tf_serving_config import versions
from tfrec_fashion_export.writer import export_parts
from tfrec_fashion_serving import contract, testing
from tfrec_fashion_serving.servable import read_signature_defs

TINY = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120, "n_time_epochs": 3,
        "mean_interactions_per_user": 12.0, "image_size": 32}
TRAIN = {"epochs": 2, "batch_size": 64, "steps_per_epoch": 8, "learning_rate": 0.02,
         "verbose": 0}
MODELS = {
    "two_tower": {"name": "two_tower", "embedding_dim": 8},
    "bpr_mf": {"name": "bpr_mf", "latent_dim": 8},
    "tvbpr": {"name": "tvbpr", "latent_dim": 4, "visual_dim": 4, "n_time_epochs": 3},
    "dvbpr": {"name": "dvbpr", "backbone": "small_cnn", "embedding_dim": 8},
}
K = 7


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> (run_dir, TrainResult) for one tiny run of each model family."""
    root = tmp_path_factory.mktemp("runs")
    trained = {}
    for name, model in MODELS.items():
        config = from_dict(RunConfig, {"model": model, "data": TINY, "train": TRAIN, "seed": 0,
                                       "run_dir": str(root / name)})
        trained[name] = train(config)
    return trained


@pytest.fixture(scope="module")
def base(runs, tmp_path_factory):
    base = tmp_path_factory.mktemp("exports")
    for name, result in runs.items():
        export_run(result.run_dir, base, name)  # reads only what the run wrote for serving
    return base


def _reference(result):
    """What the Keras model says, computed here with tfrec_fashion: the queries to send and
    the expected answers."""
    dataset = result.dataset
    users = [*dataset.users.ids[:4], "someone-new"]
    keras_scores = result.model.score(tf.range(4)).numpy()  # [4, N], the model's own scores
    cold = result.recipe.user_vectors(result.model).mean(0) @ result.recipe.item_vectors(
        result.model).T
    scores = np.vstack([keras_scores, cold[None, :]])
    category = dataset.items.category[0]
    excluded = np.array([dataset.items.ids[np.argmax(scores[row])] for row in range(5)])
    masked = np.where(dataset.items.category[None, :] == category, scores, -np.inf)
    masked[np.arange(5), [list(dataset.items.ids).index(e) for e in excluded]] = -np.inf
    bought = dataset.interactions.user < 4  # what the known users bought is left out too
    masked[dataset.interactions.user[bought], dataset.interactions.item[bought]] = -np.inf
    expected = {}
    for key, table in (("plain", scores), ("filtered", masked)):
        top = np.argsort(-table, axis=1, kind="stable")[:, :K]
        expected[f"{key}_ids"] = dataset.items.ids[top]
        expected[f"{key}_scores"] = np.take_along_axis(table, top, axis=1)
    pairs = dataset.items.ids[[[3, 1, 4], [1, 5, 9], [2, 6, 5], [3, 5, 8], [9, 7, 9]]]
    expected["pair_ids"] = pairs
    expected["pair_scores"] = np.take_along_axis(
        scores, np.vectorize(list(dataset.items.ids).index)(pairs), axis=1)
    embedder = result.recipe.item_embedder(result.model)
    if embedder is not None and embedder.input_name == "image":
        # DVBPR: an item's embedding from its image is its row in the index. Every image is
        # sent, so the served CNN runs at the batch the index was computed at (one batch of
        # all items): the same function along the same batch path.
        expected["content"] = result.recipe.images.numpy()
        expected["embedding"] = result.model.embed_items(expected["content"]).numpy()
        expected["index_rows"] = result.recipe.item_vectors(result.model)
    elif embedder is not None:
        # VBPR family: raw features in; the model saw them standardised.
        mean, scale = result.recipe.feature_scaling
        expected["content"] = result.recipe.features[:3] * scale + mean
        expected["embedding"] = result.model.embed_items(result.recipe.features[:3]).numpy()
    if embedder is not None:
        expected["content_input"] = embedder.input_name
    return {"users": np.array(users), "category": category, "excluded": excluded, **expected}


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    base, names, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    results = {}
    for name in names:
        ref = np.load(f"{out}/{name}_in.npz", allow_pickle=True)
        model = tf.saved_model.load(f"{base}/{name}/1")
        users = tf.constant(ref["users"].astype(str))
        n = len(ref["users"])
        plain = model.signatures["recommend"](
            user_id=users, k=tf.constant([%(k)d]), category=tf.constant([""]),
            exclude_item_ids=tf.zeros([1, 0], tf.string), exclude_seen=tf.constant([False]))
        filtered = model.signatures["serving_default"](
            user_id=users, k=tf.fill([n], %(k)d), category=tf.constant([str(ref["category"])]),
            exclude_item_ids=tf.constant(ref["excluded"].astype(str)[:, None]),
            exclude_seen=tf.fill([n], True))
        pairs = model.signatures["score"](user_id=users,
                                          item_ids=tf.constant(ref["pair_ids"].astype(str)))
        got = {"plain_ids": plain["item_ids"], "plain_scores": plain["scores"],
               "cold_start": plain["cold_start"], "filtered_ids": filtered["item_ids"],
               "filtered_scores": filtered["scores"], "pair_scores": pairs["scores"]}
        if "embed_item" in model.signatures:
            got["embedding"] = model.signatures["embed_item"](
                **{str(ref["content_input"]): tf.constant(ref["content"])})["embedding"]
        np.savez(f"{out}/{name}_out.npz", **{k: v.numpy() for k, v in got.items()})
    print(json.dumps({"tfrec_fashion": "tfrec_fashion" in sys.modules,
                      "tfrs": "tensorflow_recommenders" in sys.modules}))
""") % {"k": K}


def test_a_fresh_process_without_project_code_gets_the_keras_models_answers(runs, base,
                                                                            tmp_path,
                                                                            assert_close):
    references = {name: _reference(result) for name, result in runs.items()}
    for name, reference in references.items():
        np.savez(tmp_path / f"{name}_in.npz", **reference)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)  # a plain TensorFlow user: no Keras 2 switch either
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(base), ",".join(runs),
                           str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"tfrec_fashion": False,
                                                                "tfrs": False}
    for name, reference in references.items():
        got = np.load(tmp_path / f"{name}_out.npz", allow_pickle=True)
        for key in ("plain", "filtered"):
            np.testing.assert_array_equal(got[f"{key}_ids"].astype(str), reference[f"{key}_ids"],
                                          err_msg=f"{name} {key}")
            # Scores are dot products of <= 10 float32 terms (a user row against an index row
            # the export copied): 2 (n - 1) = 18 ulps bound any reordering of them.
            assert_close(got[f"{key}_scores"], reference[f"{key}_scores"], ulps=18,
                         err_msg=f"{name} {key}")
        np.testing.assert_array_equal(got["cold_start"], [False] * 4 + [True])
        assert_close(got["pair_scores"], reference["pair_scores"], ulps=18, err_msg=name)
        # The filter did something: every answer is in the category and misses the excluded.
        assert not np.array_equal(got["filtered_ids"], got["plain_ids"])
        # embed_item is the SavedModel's graph, where grappler folds and fuses ops that eager
        # Keras runs one by one: a few ulps per layer of the small CNN (DVBPR) or of the
        # un-standardise / standardise / E f chain (TVBPR).
        if "embedding" in reference:
            assert_close(got["embedding"], reference["embedding"], ulps=64, err_msg=name)
        if "index_rows" in reference:
            assert_close(got["embedding"], reference["index_rows"], ulps=64, err_msg=name)
    assert references["dvbpr"]["content_input"] == "image"
    assert references["tvbpr"]["content_input"] == "features"
    assert "embedding" not in references["bpr_mf"] and "embedding" not in references["two_tower"]


def test_signatures_refuse_bad_requests_with_invalid_argument(base, runs):
    model = tf.saved_model.load(str(base / "bpr_mf" / "1"))
    recommend = model.signatures["recommend"]
    users = runs["bpr_mf"].dataset.users.ids
    good = {"user_id": tf.constant(users[:2]), "k": tf.constant([3]),
            "category": tf.constant([""]), "exclude_item_ids": tf.zeros([1, 0], tf.string),
            "exclude_seen": tf.constant([True])}
    cases = {"k": ({"k": tf.constant([0])}, "k must be in [1, 120]"),
             "k too big": ({"k": tf.constant([121])}, "k must be in [1, 120]"),
             "category": ({"category": tf.constant(["hats"])}, "unknown category"),
             "batch": ({"k": tf.constant([3, 4, 5])}, "k must have batch size 1"),
             "empty": ({"user_id": tf.zeros([0], tf.string)}, "at least one id")}
    for case, (change, message) in cases.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("[", r"\[")):
            recommend(**{**good, **change})
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown item id"):
        model.signatures["score"](user_id=tf.constant(users[:1]),
                                  item_ids=tf.constant([["not-an-item"]]))
    assert recommend(**good)["item_ids"].shape == (2, 3)  # still answers after the errors


def test_rows_ask_for_their_own_k_and_short_categories_are_padded(base, runs):
    model = tf.saved_model.load(str(base / "bpr_mf" / "1"))
    dataset = runs["bpr_mf"].dataset
    categories, counts = np.unique(dataset.items.category, return_counts=True)
    small = categories[np.argmin(counts)]
    out = model.signatures["recommend"](
        user_id=tf.constant(dataset.users.ids[:2]), k=tf.constant([2, counts.min() + 3]),
        category=tf.constant([small]), exclude_item_ids=tf.constant([[""], [""]]),
        exclude_seen=tf.constant([False]))
    ids, scores = out["item_ids"].numpy().astype(str), out["scores"].numpy()
    assert ids.shape == (2, counts.min() + 3)
    assert (ids[0, 2:] == "").all() and np.isneginf(scores[0, 2:]).all()
    assert (ids[1, :counts.min()] != "").all() and (ids[1, counts.min():] == "").all()
    by_id = dict(zip(dataset.items.ids, dataset.items.category))
    assert {by_id[i] for i in ids[ids != ""]} == {small}


def test_warmup_records_are_prediction_logs_that_replay(base):
    replayed = testing.replay_warmup(base / "dvbpr" / "1")
    model = tf.saved_model.load(str(base / "dvbpr" / "1"))
    assert sorted(replayed) == ["embed_item", "recommend", "score", "user_query"]
    seen = model.signatures["user_query"](user_id=tf.constant(["nobody"]))["seen_item_ids"]
    assert seen.shape[0] == 1 and (seen.numpy() == b"").all()
    info = json.loads((base / "dvbpr" / "1" / "assets.extra" / writer.INFO_FILE).read_text())
    assert info["model"] == "dvbpr" and info["embed_item_input"] == "image"


def test_models_config_covers_every_model_and_keeps_labels(base, runs):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / "models.config").read_text(), config)
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert sorted(entries) == sorted(MODELS)
    assert entries["tvbpr"].base_path == "/models/tvbpr"
    assert entries["tvbpr"].model_platform == "tensorflow"
    result = runs["tvbpr"]
    path = export_parts(load_parts(result.run_dir), base, "tvbpr",
                        label="stable")
    assert path.name == "2" and versions(base / "tvbpr") == [1, 2]
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / "models.config").read_text(), config)
    entry = [e for e in config.model_config_list.config if e.name == "tvbpr"][0]
    assert dict(entry.version_labels) == {"stable": 2}
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_parts(load_parts(result.run_dir), base, "tvbpr", version=2)


def test_an_export_that_fails_half_way_leaves_nothing_visible(runs, tmp_path, monkeypatch):
    result = runs["bpr_mf"]
    parts = load_parts(result.run_dir)
    export_parts(parts, tmp_path, "shop")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed while writing the warm-up file

    monkeypatch.setattr(writer, "write_warmup_requests", crash)
    with pytest.raises(KeyboardInterrupt):
        export_parts(parts, tmp_path, "shop")
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == ["1"]
    # A process killed outright leaves its temporary folder: never a version, removed later.
    leftover = tmp_path / "shop" / ".tmp-2-999999999-x"
    (leftover / "variables").mkdir(parents=True)
    (leftover / "saved_model.pb").write_bytes(b"half")
    assert versions(tmp_path / "shop") == [1]
    monkeypatch.undo()
    export_parts(parts, tmp_path, "shop")
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == ["1", "2"]


def test_cli_exports_a_run_directory(runs, tmp_path, capsys):
    code = cli_main(["export", str(runs["bpr_mf"].run_dir), "--base", str(tmp_path),
                     "--name", "catalogue"])
    assert code == 0 and "catalogue/1" in capsys.readouterr().out
    assert versions(tmp_path / "catalogue") == [1]
    assert cli_main(["export", str(runs["bpr_mf"].run_dir), "--base", str(tmp_path),
                     "--name", "catalogue", "--version", "1"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert cli_main(["export", str(tmp_path / "nothing"), "--base", str(tmp_path)]) == 2
    assert "no trained model" in capsys.readouterr().err


def test_a_run_from_before_serving_parts_is_rebuilt_once_and_gets_them(runs, tmp_path,
                                                                      assert_close):
    import shutil

    run_dir = tmp_path / "old_run"
    shutil.copytree(runs["tvbpr"].run_dir, run_dir)
    shutil.rmtree(run_dir / "serving")  # as a run trained before runs wrote their parts
    path = export_run(run_dir, tmp_path / "base")
    assert path == tmp_path / "base" / "tvbpr" / "1"
    assert (run_dir / "serving" / "parts.json").is_file()  # the next export reads them
    model = tf.saved_model.load(str(path))
    served = model.signatures["score"](user_id=tf.constant(runs["tvbpr"].dataset.users.ids[:1]),
                                       item_ids=tf.constant([runs["tvbpr"].dataset.items.ids[:5]]))
    keras = runs["tvbpr"].model.score(tf.constant([0])).numpy()[:, :5]  # last epoch, "now"
    assert_close(served["scores"].numpy(), keras, ulps=18)  # dot products of 10 terms


def test_vbpr_on_efficientnet_features_embeds_a_new_items_image(tmp_path, real_data,
                                                               assert_close):
    """embed_item carries the whole chain: image -> EfficientNet-Lite0 (real weights) ->
    the training-time standardisation -> E f: an item's own image gives the vector the model
    scored it with (less its id terms)."""
    from tfrec_fashion.data.torch_pickle import load_wheel_state_dict
    from tfrec_fashion.layers.item_content import item_images

    real_data(load_wheel_state_dict, "efficientnet-lite0")
    model = {"name": "vbpr", "feature_source": "efficientnet", "image_size": 32,
             "latent_dim": 4, "visual_dim": 4}
    config = from_dict(RunConfig, {"model": model, "data": TINY, "train": {**TRAIN, "epochs": 1},
                                   "seed": 0, "run_dir": str(tmp_path / "run")})
    result = train(config)

    def forbidden(*args, **kwargs):
        raise AssertionError("export ran the feature extractor or rebuilt the dataset")

    # Export reads the run directory only: no EfficientNet over the catalogue, no dataset.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tfrec_fashion.layers.efficientnet_lite.efficientnet_lite0", forbidden)
        patch.setattr("tfrec_fashion.data.synthetic.make_world", forbidden)
        patch.setattr("tfrec_fashion.training.harness.load_run", forbidden)
        path = export_run(result.run_dir, tmp_path / "base")
    served = tf.saved_model.load(str(path)).signatures["embed_item"]
    # The first batch the recipe extracted features from, so the served EfficientNet runs at
    # the training-time batch size: only graph against eager differs, not the batch path.
    images = item_images(result.dataset, 32)[:64]
    # The graph folds each batch norm into its convolution and fuses ReLU6, which eager Keras
    # applies one by one: a few ulps per layer over EfficientNet-Lite0's 49 convolutions, then
    # a 1280-term sum through the standardisation (19 ulps in the pooled features, ~380 in the
    # embedding, measured on AVX-512). 16 ulps per convolution: 784.
    assert_close(served(image=images)["embedding"].numpy(),
                 result.model.embed_items(result.recipe.features[:64]).numpy(), ulps=784)


def test_recommend_declares_its_defaults_for_tf_serving(base):
    """TF Serving fills inputs a request leaves out from SignatureDef.defaults."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((base / "bpr_mf" / "1" / "saved_model.pb")
                                                  .read_bytes())
    signatures = saved.meta_graphs[0].signature_def
    for name in ("recommend", "serving_default"):
        defaults = {key: tf.make_ndarray(value) for key, value in signatures[name].defaults.items()}
        assert sorted(defaults) == ["category", "exclude_item_ids", "exclude_seen", "k"]
        assert defaults["exclude_seen"].tolist() == [True]
        assert defaults["k"].tolist() == [10] and defaults["category"].tolist() == [b""]
        assert defaults["exclude_item_ids"].shape == (1, 0)
    assert not signatures["score"].defaults


def test_recommend_leaves_out_what_the_user_bought_unless_asked(base, runs):
    model = tf.saved_model.load(str(base / "bpr_mf" / "1"))
    dataset = runs["bpr_mf"].dataset
    users = dataset.users.ids[:6]
    n = len(dataset.items.ids)
    inputs = {"user_id": tf.constant(users), "k": tf.constant([n - 30]),
              "category": tf.constant([""]), "exclude_item_ids": tf.zeros([1, 0], tf.string)}
    kept = model.signatures["recommend"](**inputs, exclude_seen=tf.constant([False]))
    left_out = model.signatures["recommend"](**inputs, exclude_seen=tf.constant([True]))
    query = model.signatures["user_query"](user_id=tf.constant(users))
    for row in range(len(users)):
        bought = set(dataset.items.ids[dataset.interactions.item[
            dataset.interactions.user == row]])
        assert bought and {s.decode() for s in query["seen_item_ids"].numpy()[row] if s} == bought
        served = {s.decode() for s in left_out["item_ids"].numpy()[row] if s}
        assert not served & bought
        assert bought & {s.decode() for s in kept["item_ids"].numpy()[row]}


def test_embed_item_refuses_pixels_out_of_range_and_non_finite_features(base):
    images = tf.saved_model.load(str(base / "dvbpr" / "1")).signatures["embed_item"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"lie in \[0, 1\]"):
        images(image=tf.fill([1, 32, 32, 3], 255.0))  # 8-bit pixels not scaled
    assert images(image=tf.fill([1, 32, 32, 3], 0.5))["embedding"].shape == (1, 8)
    features = tf.saved_model.load(str(base / "tvbpr" / "1")).signatures["embed_item"]
    width = features.structured_input_signature[1]["features"].shape[1]
    with pytest.raises(tf.errors.InvalidArgumentError, match="features must be finite"):
        features(features=tf.fill([1, width], float("nan")))


def test_every_export_follows_the_serving_contract(base, runs):
    """The signatures are built from ``tfrec_fashion_serving.contract``, the declaration the
    toy model, the client and the warm-up records share: no alias, dtype, shape or default of
    any export departs from it (``embed_item`` against the embedder's declared input)."""
    for name, result in runs.items():
        signature_defs = read_signature_defs(str(base / name / "1"))
        signatures = list(contract.RETRIEVAL.signatures)
        embedder = result.recipe.item_embedder(result.model)
        if embedder is not None:
            signatures.append(contract.embed_item(embedder.input_spec))
        assert {signature.name for signature in signatures} | {contract.SERVING_DEFAULT} == \
            set(signature_defs) - {"__saved_model_init_op"}, name
        for signature in signatures:
            assert contract.differences(signature, signature_defs[signature.name]) == [], name
