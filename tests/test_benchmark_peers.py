"""``benchmarks/peers.py`` without its peer venv (building it takes minutes; the benchmark run
does that): the split goes to the runner and factors come back through .npz files unchanged,
peer factors scored by our AUC code equal a direct NumPy computation of the protocol, and the
table, ratios and targets print what they say."""

import sys
from pathlib import Path

import numpy as np
import pytest

from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Ratings, Users
from tfrec_fashion.evaluation.implicit import ImplicitEvaluation
from tfrec_fashion.evaluation.ratings import RatingEvaluation

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def modules():
    """``benchmarks/peers.py`` and ``peers_runner.py``, imported by path."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import peers
        import peers_runner
    finally:
        sys.path.remove(str(BENCHMARKS))
    return peers, peers_runner


@pytest.fixture(scope="module")
def tiny():
    """8 users x 15 items, 7 interactions (and 1..5 ratings) each, timestamps in order."""
    rng = np.random.default_rng(3)
    n_users, n_items, per_user = 8, 15, 7
    # Items 12-14 are bought rarely (cold); everyone's choices are otherwise random.
    users = np.repeat(np.arange(n_users), per_user).astype(np.int32)
    items = np.concatenate([rng.choice(n_items - 3 if u % 3 else n_items, per_user,
                                       replace=False) for u in range(n_users)]).astype(np.int32)
    time = np.arange(len(users), dtype=np.int64)
    values = rng.integers(1, 6, len(users)).astype(np.float32)
    dataset = FashionDataset(
        "tiny", Users(np.array([f"u{u}" for u in range(n_users)])),
        Items(np.array([f"i{i}" for i in range(n_items)]), np.array(["top"] * n_items)),
        interactions=Interactions(users, items, time), ratings=Ratings(users, items, values),
        metadata={"rating_range": [1.0, 5.0]})
    return dataset


def test_split_round_trip_through_the_runner(modules, tiny, tmp_path, monkeypatch):
    peers, peers_runner = modules
    split = ImplicitEvaluation(tiny, seed=0).split
    methods = {"fake_bpr": {"k": 3}, "rlrmc": {"rank": 3}}
    path = peers.export_split(tmp_path / "split.npz", "implicit", split.n_users, split.n_items,
                              7, methods, **peers.implicit_split_arrays(split))
    stored = peers.read_npz(path)
    assert (stored["protocol"], stored["n_users"], stored["n_items"], stored["seed"]) == (
        "implicit", 8, 15, 7)
    assert stored["methods"] == methods
    np.testing.assert_array_equal(stored["train_user"], split.train.user)
    np.testing.assert_array_equal(stored["train_item"], split.train.item)

    # The runner (run here in our venv: it imports only NumPy / SciPy at the top) hands a
    # peer the same arrays and writes back what the peer returns; a peer whose library is
    # missing (RLRMC's recommenders) is skipped with the reason.
    seen = {}

    def fake_bpr(got, params):
        seen.update(got, params=params)
        return {"user_factors": np.full((8, 3), 0.5, np.float32),
                "item_factors": np.arange(45, dtype=np.float32).reshape(15, 3),
                "fit_seconds": 0.25, "samples": 10 * len(got["train_user"])}

    monkeypatch.setitem(peers_runner.PEERS, "fake_bpr", fake_bpr)
    peers_runner.run(path, tmp_path / "out.npz")
    assert seen["params"] == {"k": 3}
    np.testing.assert_array_equal(seen["train_item"], split.train.item)
    out = peers.read_npz(tmp_path / "out.npz")
    assert "numpy" in out["versions"]
    got = peers.peer_outputs(out, "fake_bpr")
    assert got["fit_seconds"] == 0.25 and got["samples"] == 10 * len(split.train)
    np.testing.assert_array_equal(got["item_factors"],
                                  np.arange(45, dtype=np.float32).reshape(15, 3))
    assert peers.peer_outputs(out, "rlrmc")["skipped"].startswith(
        "not installed in the peer venv")


def test_rating_split_round_trip(modules, tiny, tmp_path):
    peers, _ = modules
    evaluation = RatingEvaluation(tiny, seed=0)
    arrays = peers.rating_split_arrays(evaluation.split, evaluation.rating_range)
    path = peers.export_split(tmp_path / "ratings.npz", "ratings", 8, 15, 0,
                              {"cornac_mf": {"k": 2}}, **arrays)
    stored = peers.read_npz(path)
    for part in ("train", "test", "validation"):
        table = getattr(evaluation.split, part)
        np.testing.assert_array_equal(stored[f"{part}_user"], table.user)
        np.testing.assert_array_equal(stored[f"{part}_item"], table.item)
    np.testing.assert_array_equal(stored["train_value"], evaluation.split.train.value)
    np.testing.assert_array_equal(stored["rating_range"], [1.0, 5.0])
    with pytest.raises(ValueError, match="protocol must be"):
        peers.export_split(tmp_path / "x.npz", "pairs", 8, 15, 0, {})


def _direct_auc(scores, split, cold=False):
    """DVBPR eq. 3 by hand: per user, the test item against every item outside train,
    validation and test (only cold ones, and only a cold test item, when ``cold``)."""
    seen = {}
    for part in (split.train, split.validation, split.test):
        for u, i in zip(part.user, part.item):
            seen.setdefault(int(u), set()).add(int(i))
    values = []
    for u, t in zip(split.test.user, split.test.item):
        if cold and not split.cold_items[t]:
            continue
        negatives = [j for j in range(split.n_items) if j not in seen[int(u)]
                     and (not cold or split.cold_items[j])]
        if negatives:
            s = scores[u]
            values.append(np.mean([1.0 if s[t] > s[j] else 0.5 if s[t] == s[j] else 0.0
                                   for j in negatives]))
    return float(np.mean(values))


def test_peer_factors_scored_by_our_auc_equal_a_direct_computation(modules, tiny):
    peers, _ = modules
    evaluation = ImplicitEvaluation(tiny, seed=0)
    rng = np.random.default_rng(0)
    # A Cornac-style export: factors plus the item bias against a user column of ones.
    users = np.concatenate([rng.normal(size=(8, 4)), np.ones((8, 1))], 1)
    items = rng.normal(size=(15, 5))
    metrics = peers.ranking_metrics(evaluation, users, items)
    scores = (users.astype(np.float32) @ items.astype(np.float32).T)
    assert evaluation.split.cold_items.any()
    assert metrics["test_auc"] == pytest.approx(_direct_auc(scores, evaluation.split), abs=1e-6)
    assert metrics["cold_test_auc"] == pytest.approx(
        _direct_auc(scores, evaluation.split, cold=True), abs=1e-6)


def test_table_ratios_and_targets(modules):
    peers, _ = modules
    ours = {"method": "BPR-MF", "val_auc": 0.89, "test_auc": 0.88, "cold_test_auc": None,
            "fit_seconds": 12.0, "throughput": 64000.0, "unit": "triplets/s"}
    cornac = {"method": "Cornac BPR", "peer": "cornac_bpr", "test_auc": 0.885,
              "cold_test_auc": float("nan"), "fit_seconds": 4.0, "throughput": 2e6,
              "unit": "triplets/s"}
    table = peers.format_table([ours, cornac], peers.RANKING_COLUMNS)
    assert table.splitlines() == [
        "| method | val AUC | test AUC | cold test AUC | fit s | throughput | unit |",
        "|---|---:|---:|---:|---:|---:|---|",
        "| BPR-MF | 0.8900 | 0.8800 | - | 12.0 | 64,000 | triplets/s |",
        "| Cornac BPR | - | 0.8850 | - | 4.0 | 2,000,000 | triplets/s |"]
    assert peers.ranking_ratios(ours, [cornac]) == [
        "BPR-MF vs. Cornac BPR: AUC -0.0050, fit time 3.00x"]
    partial_dual = {"method": "Partial Dual", "test_rmse": 0.91, "fit_seconds": 20.0}
    mf = {"method": "Cornac MF", "test_rmse": 0.93, "fit_seconds": 0.5}
    svd = {"method": "surprise SVD", "test_rmse": 0.90, "fit_seconds": 2.0}
    assert peers.rating_ratios([partial_dual], [mf, svd]) == [
        "Partial Dual vs. Cornac MF: RMSE -0.0200, fit time 40.00x",
        "Partial Dual vs. surprise SVD: RMSE +0.0100, fit time 10.00x"]
    assert peers.target_lines(ours, [cornac], partial_dual, [mf, svd]) == [
        "MISSED: BPR-MF test AUC 0.8800 at or above Cornac BPR's 0.8850 (short by 0.0050)",
        "MISSED: BPR-MF fit 12.0 s within 2x Cornac BPR's 4.0 s (3.00x, 4.0 s over the 2x "
        "budget)",
        "MET: Partial Dual RMSE 0.9100 at or below Cornac MF's 0.9300 (by 0.0200)",
        "MISSED: Partial Dual RMSE 0.9100 at or below surprise SVD's 0.9000 (above by 0.0100)"]
    faster = {**ours, "test_auc": 0.89, "fit_seconds": 6.0}
    assert peers.target_lines(faster, [cornac], None, []) == [
        "MET: BPR-MF test AUC 0.8900 at or above Cornac BPR's 0.8850 (by 0.0050)",
        "MET: BPR-MF fit 6.0 s within 2x Cornac BPR's 4.0 s (1.50x)",
        "NOT CHECKED: Partial Dual did not run"]
    # The peers' settings: library defaults but the latent dimension; --quick cuts epochs.
    assert peers.ranking_peers(40)["cornac_bpr"] == {
        "k": 40, "max_iter": 100, "learning_rate": 0.001, "lambda_reg": 0.01, "use_bias": True}
    assert peers.rating_peers(21, quick=True)["surprise_svd"]["n_epochs"] == 5


def test_grids_and_the_rows_the_table_shows(modules):
    peers, _ = modules
    defaults = {"cornac_bpr": {"k": 4, "learning_rate": 0.001, "lambda_reg": 0.01},
                "implicit_als": {"factors": 4, "alpha": 1.0}}
    candidates = peers.with_grids(defaults, {"cornac_bpr": {"learning_rate": (0.001, 0.05),
                                                            "lambda_reg": (0.01, 0.1)}})
    assert candidates == {
        "cornac_bpr": {"k": 4, "learning_rate": 0.001, "lambda_reg": 0.01},
        "implicit_als": {"factors": 4, "alpha": 1.0},
        "cornac_bpr@learning_rate=0.001,lambda_reg=0.1":
            {"k": 4, "learning_rate": 0.001, "lambda_reg": 0.1},
        "cornac_bpr@learning_rate=0.05,lambda_reg=0.01":
            {"k": 4, "learning_rate": 0.05, "lambda_reg": 0.01},
        "cornac_bpr@learning_rate=0.05,lambda_reg=0.1":
            {"k": 4, "learning_rate": 0.05, "lambda_reg": 0.1}}
    rows = [{"peer": "cornac_bpr", "method": "Cornac BPR", "val_auc": 0.80, "test_auc": 0.79},
            {"peer": "implicit_als", "method": "implicit ALS", "val_auc": 0.84},
            {"peer": "cornac_bpr@learning_rate=0.05,lambda_reg=0.01", "method": "Cornac BPR",
             "val_auc": 0.90, "test_auc": 0.70},   # picked on validation, not on test
            {"peer": "cornac_bpr@learning_rate=0.05,lambda_reg=0.1", "method": "Cornac BPR",
             "val_auc": 0.85, "test_auc": 0.95},
            {"peer": "implicit_als@alpha=10", "method": "implicit ALS", "val_auc": 0.83},
            {"peer": "cornac_svd", "method": "Cornac SVD", "val_auc": 0.5},  # no grid
            {"peer": "rlrmc", "method": "RLRMC", "skipped": "not installed"}]
    shown = peers.shown_rows(rows, "val_auc", "max")
    assert [(row["method"], row["test_auc"] if "test_auc" in row else None) for row in shown] == [
        ("Cornac BPR, defaults", 0.79),
        ("Cornac BPR, tuned on validation: learning_rate=0.05,lambda_reg=0.01", 0.70),
        ("implicit ALS, defaults (also the validation best)", None),
        ("Cornac SVD, defaults", None)]
    assert [row["short"] for row in shown] == [
        "Cornac BPR (defaults)", "Cornac BPR (tuned)", "implicit ALS (defaults)",
        "Cornac SVD (defaults)"]
    best = peers.validation_best([{**row, "val_rmse": -row.get("val_auc", 0)} for row in rows],
                                 "val_rmse", "min")
    assert best["cornac_bpr"]["peer"] == "cornac_bpr@learning_rate=0.05,lambda_reg=0.01"


def test_peer_rows_label_skip_and_throughput(modules):
    peers, _ = modules
    out = {"cornac_bpr@lr=0.05__fit_seconds": np.float64(0.5), "cornac_bpr@lr=0.05__samples": 200,
           "cornac_bpr@lr=0.05__score": 3.0, "rlrmc__skipped": "not installed"}
    rows = peers.peer_rows({"cornac_bpr@lr=0.05": {"lr": 0.05}, "rlrmc": {}}, out, "d=40",
                           lambda got: {"test_auc": got["score"] / 4})
    assert rows == [
        {"method": "Cornac BPR (d=40)", "peer": "cornac_bpr@lr=0.05", "params": {"lr": 0.05},
         "unit": "triplets/s", "test_auc": 0.75, "fit_seconds": 0.5, "throughput": 400.0},
        {"method": "Recommenders RLRMC (d=40)", "peer": "rlrmc", "params": {},
         "unit": "ratings/s", "skipped": "not installed"}]
