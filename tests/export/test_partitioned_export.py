"""The approximate index inside a SavedModel, as a user exports and serves it: a tiny BPR-MF run
exported with ``index="partitioned"``; a fresh process without project code gets the same
answers as the exporting process; the graph has only stock ops; the project's server answers the
official client with them; the export prints recall@10 and refuses one below ``min_recall``."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfrec_fashion.cli import main as cli_main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export.graph_ops import check_stock_ops
from tfrec_fashion.training.serving_parts import load_parts
from tfrec_fashion_export.writer import INFO_FILE, export_parts
from tfrec_fashion_serving import client
from tfrec_fashion_serving.server import start_server

TINY = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 240, "n_time_epochs": 3,
        "mean_interactions_per_user": 12.0, "image_size": 32}
TRAIN = {"epochs": 2, "batch_size": 64, "steps_per_epoch": 8, "learning_rate": 0.02,
         "verbose": 0}
# Forced to be approximate on 240 items: 24 partitions, 3 probed.
APPROXIMATE = {"n_partitions": 24, "n_probe": 3}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = from_dict(RunConfig, {"model": {"name": "bpr_mf", "latent_dim": 8}, "data": TINY,
                                   "train": TRAIN, "seed": 0,
                                   "run_dir": str(tmp_path_factory.mktemp("run") / "bpr")})
    return train(config)


@pytest.fixture(scope="module")
def base(run, tmp_path_factory):
    """shop/1 brute force, shop/2 partitioned with defaults (exact at this size), shop/3 forced
    approximate."""
    base = tmp_path_factory.mktemp("exports")
    parts = load_parts(run.run_dir)
    export_parts(parts, base, "shop")
    export_parts(parts, base, "shop", index="partitioned")
    export_parts(parts, base, "shop", index="partitioned", index_params=APPROXIMATE)
    return base


def _queries(run):
    users = np.array([*run.dataset.users.ids[:6], "someone-new"])
    category = run.dataset.items.category[0]
    excluded = np.array([[run.dataset.items.ids[i]] for i in range(len(users))])
    return users, category, excluded


def _answers(signature, users, category, excluded):
    n = len(users)
    plain = signature(user_id=tf.constant(users), k=tf.constant([10]),
                      category=tf.constant([""]), exclude_item_ids=tf.zeros([1, 0], tf.string),
                      exclude_seen=tf.constant([False]))
    filtered = signature(user_id=tf.constant(users), k=tf.fill([n], 10),
                         category=tf.constant([category]),
                         exclude_item_ids=tf.constant(excluded), exclude_seen=tf.fill([n], True))
    return {f"{name}_{key}": value.numpy() for name, result in (("plain", plain),
                                                                ("filtered", filtered))
            for key, value in result.items()}


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    base, out = sys.argv[1], sys.argv[2]
    ref = np.load(f"{out}/in.npz", allow_pickle=True)
    users, category, excluded = ref["users"].astype(str), str(ref["category"]), ref["excluded"]
    for version in (1, 2, 3):
        signature = tf.saved_model.load(f"{base}/shop/{version}").signatures["recommend"]
        n = len(users)
        plain = signature(user_id=tf.constant(users), k=tf.constant([10]),
                          category=tf.constant([""]),
                          exclude_item_ids=tf.zeros([1, 0], tf.string),
                          exclude_seen=tf.constant([False]))
        filtered = signature(user_id=tf.constant(users), k=tf.fill([n], 10),
                             category=tf.constant([category]),
                             exclude_item_ids=tf.constant(excluded.astype(str)),
                             exclude_seen=tf.fill([n], True))
        got = {f"{name}_{key}": value.numpy() for name, result in (("plain", plain),
               ("filtered", filtered)) for key, value in result.items()}
        np.savez(f"{out}/out{version}.npz", **got)
    print(json.dumps({"tfrec_fashion": "tfrec_fashion" in sys.modules,
                      "tfrs": "tensorflow_recommenders" in sys.modules}))
""")


def test_a_fresh_process_without_project_code_gets_the_same_answers(run, base, tmp_path):
    users, category, excluded = _queries(run)
    np.savez(tmp_path / "in.npz", users=users, category=category, excluded=excluded)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(base), str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"tfrec_fashion": False,
                                                                "tfrs": False}
    got = {v: np.load(tmp_path / f"out{v}.npz", allow_pickle=True) for v in (1, 2, 3)}
    # Defaults on 240 items probe everything: the brute-force export's answers exactly.
    for key in ("plain", "filtered"):
        np.testing.assert_array_equal(got[2][f"{key}_item_ids"], got[1][f"{key}_item_ids"])
        np.testing.assert_allclose(got[2][f"{key}_scores"], got[1][f"{key}_scores"],
                                   rtol=1e-5, atol=1e-5)
    # The forced-approximate version: the exporting process's answers, and not all exact.
    here = _answers(tf.saved_model.load(str(base / "shop" / "3")).signatures["recommend"],
                    users, category, excluded)
    for key, value in here.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(got[3][key], value, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(got[3][key], value)
    assert not np.array_equal(got[3]["plain_item_ids"], got[1]["plain_item_ids"])
    # Approximate or not, the filter and the exclusions hold and scores are exact inner products.
    ids = got[3]["filtered_item_ids"].astype(str)
    category_of = dict(zip(run.dataset.items.ids, run.dataset.items.category))
    assert all(category_of[i] == category for row in ids for i in row if i)
    assert not any(excluded[row, 0] in ids[row] for row in range(len(users)))
    info = json.loads((base / "shop" / "3" / "assets.extra" / INFO_FILE).read_text())
    parts = load_parts(run.run_dir)
    row_of = {item: row for row, item in enumerate(parts.item_ids)}
    for row, user in enumerate(users[:-1]):
        vectors = parts.item_vectors[[row_of[i] for i in got[3]["plain_item_ids"][row].astype(str)]]
        np.testing.assert_allclose(got[3]["plain_scores"][row],
                                   vectors @ parts.user_vectors[list(parts.user_ids).index(user)],
                                   rtol=1e-5, atol=1e-5)
    assert info["index"]["kind"] == "partitioned" and info["index"]["n_probe"] == 3


def test_every_export_uses_only_ops_stock_tf_serving_registers(base):
    reports = {v: check_stock_ops(base / "shop" / str(v)) for v in (1, 2, 3)}
    for version, report in reports.items():
        assert report["non_stock"] == [], version
        info = json.loads((base / "shop" / str(version) / "assets.extra" / INFO_FILE).read_text())
        assert info["ops"]["non_stock"] == [] and info["ops"]["op_types"] == report["op_types"]
    # The partitioned graph really is a different one: its probe and scan ops are in it.
    assert {"RaggedRange", "TopKV2"} <= set(reports[3]["ops"])
    assert "RaggedRange" not in reports[1]["ops"]


def test_the_export_reports_recall_and_refuses_one_below_min_recall(run, tmp_path, capsys):
    parts = load_parts(run.run_dir)
    path = export_parts(parts, tmp_path, "shop", index="partitioned",
                        index_params={**APPROXIMATE, "quantization": "int8"})
    printed = capsys.readouterr().out
    assert "recall@10 against BruteForce" in printed and "all in TensorFlow" in printed
    recall = json.loads((path / "assets.extra" / INFO_FILE).read_text())["index"]["recall_at_10"]
    assert recall["queries"] == len(parts.user_ids) - len(parts.user_ids) // 2  # held-out half
    assert 0.3 < recall["any_category"] < 1.0 and 0.3 < recall["one_category"] <= 1.0
    assert 0.0 < recall["seen_excluded"] <= 1.0  # what recommend answers by default
    with pytest.raises(ValueError, match="below min_recall"):
        export_parts(parts, tmp_path, "shop", index="partitioned", index_params=APPROXIMATE,
                     min_recall=0.999)
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == ["1"]  # nothing half-made
    with pytest.raises(ValueError, match="partitioned index"):
        export_parts(parts, tmp_path, "shop", index_params=APPROXIMATE)


def test_the_projects_server_answers_the_official_client_from_the_partitioned_export(run,
                                                                                     base):
    server = start_server(str(base / "models.config"), port=0, poll_seconds=0.3,
                          ann_loader=None)
    try:
        server.wait_until_available("shop", timeout=60, version=3)
        users, category, excluded = _queries(run)
        served = client.recommend(f"127.0.0.1:{server.port}", "shop", list(users), k=10,
                                  exclude_seen=False)
        assert served["version"] == 3
        here = _answers(tf.saved_model.load(str(base / "shop" / "3")).signatures["recommend"],
                        users, category, excluded)
        np.testing.assert_array_equal(served["item_ids"].astype(str),
                                      here["plain_item_ids"].astype(str))
        np.testing.assert_allclose(served["scores"], here["plain_scores"], rtol=1e-6)
    finally:
        server.stop(grace=0)


def test_cli_exports_with_index_parameters_and_checks_ops(run, tmp_path, capsys):
    base = tmp_path / "exports"
    assert cli_main(["export", str(run.run_dir), "--base", str(base), "--index", "partitioned",
                     "--n-partitions", "24", "--n-probe", "3", "--quantization", "none"]) == 0
    assert "recall@10 against BruteForce" in capsys.readouterr().out
    assert cli_main(["check-ops", str(base / "bpr_mf" / "1")]) == 0
    assert "all in TensorFlow" in capsys.readouterr().out
    # A graph with a custom op (as TFRS's ScaNN layer writes) fails the check.
    pb = base / "bpr_mf" / "1" / "saved_model.pb"
    model = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    model.meta_graphs[0].graph_def.node.add(name="scann", op="Scann>ScannSearchBatched")
    pb.write_bytes(model.SerializeToString())
    assert cli_main(["check-ops", str(base / "bpr_mf" / "1")]) == 1
    assert "Scann>ScannSearchBatched" in capsys.readouterr().out
    assert cli_main(["export", str(run.run_dir), "--base", str(base), "--n-probe", "3"]) == 2
    assert "--index partitioned only" in capsys.readouterr().err


def _random_catalogue(n_items=40_000, n_users=600, dim=16, seed=7):
    """Unclustered Gaussian vectors in 4 categories: the case the default n_probe served
    poorly (every partition about as likely to hold a query's best items)."""
    from tfrec_fashion.training.serving_parts import RetrievalParts

    rng = np.random.default_rng(seed)
    return RetrievalParts(
        user_ids=np.array([f"u{n}" for n in range(n_users)]),
        item_ids=np.array([f"i{n}" for n in range(n_items)]),
        item_categories=np.array(["top", "bottom", "shoes", "bag"])[rng.integers(0, 4, n_items)],
        user_vectors=rng.normal(size=(n_users, dim)).astype(np.float32),
        item_vectors=rng.normal(size=(n_items, dim)).astype(np.float32),
        info={"model": "random_catalogue"})


@pytest.mark.parametrize("target", [0.6, 0.95])
def test_a_recall_target_is_met_on_customers_the_index_was_not_tuned_on(target, tmp_path,
                                                                         capsys):
    parts = _random_catalogue()
    path = export_parts(parts, tmp_path, "shop", index="partitioned",
                        index_params={"target_recall": target})
    index = json.loads((path / "assets.extra" / INFO_FILE).read_text())["index"]
    tuning, checked = index["tuning"], index["recall_at_10"]
    assert tuning["met"] and tuning["chosen"]["n_probe"] == index["n_probe"]
    chosen = next(point for point in tuning["curve"]
                  if (point["n_probe"], point["rerank"]) == (index["n_probe"], index["rerank"]))
    assert chosen["recall"] >= target
    # Checked on the other 300 customers: within their sampling error (~0.01) of the target.
    assert checked["queries"] == 300
    assert min(checked["any_category"], checked["one_category"]) >= target - 0.02
    assert index["scanned_share"] < 0.5 if target < 0.9 else index["scanned_share"] > 0.2
    assert "partitioned index tuned to recall@10 >= " in capsys.readouterr().out


def test_without_n_probe_the_index_probes_more_until_the_default_target(tmp_path):
    parts = _random_catalogue()
    path = export_parts(parts, tmp_path, "shop", index="partitioned")
    index = json.loads((path / "assets.extra" / INFO_FILE).read_text())["index"]
    curve = index["tuning"]["curve"]
    assert curve[0]["recall"] < 0.9  # the default n_probe alone falls short here
    met = [point for point in curve if point["recall"] >= 0.9]
    assert index["n_probe"] == min(point["n_probe"] for point in met) > curve[0]["n_probe"]
    # The fewest probes that meet it: one fewer was measured and fell short.
    assert any(point["n_probe"] == index["n_probe"] - 1 and point["recall"] < 0.9
               for point in curve)
    assert min(index["recall_at_10"]["any_category"],
               index["recall_at_10"]["one_category"]) >= 0.88
    with pytest.raises(ValueError, match="target_recall tunes the retrieval head's"):
        export_parts(parts, tmp_path, "shop", index_params={"target_recall": 0.9})
