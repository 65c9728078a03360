"""Partial Dual as a user runs it: ``tfrec-fashion train`` on votes or ratings, a killed run
resumed, the embeddings file, the export, and MovieLens-100K beside its baselines."""

import contextlib
import csv
import io
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.config import from_dict
from tfrec_fashion.data.embeddings import CustomerEmbeddings
from tfrec_fashion.training.harness import evaluate_run, load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export.runs import export_run

TINY = {"name": "synthetic", "seed": 0, "n_users": 150, "n_items": 200,
        "ratings_per_user": 40, "n_time_epochs": 2}
MODEL = {"name": "partial_dual", "C": 5.0, "rank": 1, "max_iterations": 150, "centering": "global",
         "gap_tolerance": 1e-6}


def run_config(run_dir, data=TINY, verbose=0, **model):
    return from_dict(RunConfig, {"run_dir": str(run_dir), "seed": 0, "data": data,
                                 "model": {**MODEL, **model}, "train": {"verbose": verbose}})


@pytest.fixture(scope="module")
def trained_and_printed(tmp_path_factory):
    """The tiny run, trained with the solver's log on, and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = train(run_config(tmp_path_factory.mktemp("pd") / "run", verbose=1))
    return result, printed.getvalue()


@pytest.fixture(scope="module")
def trained(trained_and_printed):
    return trained_and_printed[0]


def test_embeddings_predict_held_out_votes_well_above_chance(trained, assert_close):
    metrics = trained.metrics
    print(json.dumps({k: v for k, v in metrics.items() if "auc" in k or "rmse" in k}, indent=1))
    assert metrics["solver_relative_gap"] < 1e-6  # certified optimal
    assert metrics["test_auc"] > 0.65
    assert metrics["test_auc"] > metrics["biases_test_auc"] + 0.03
    assert metrics["test_auc"] <= metrics["oracle_test_auc"] + 0.02
    embeddings = CustomerEmbeddings.load(trained.run_dir)
    np.testing.assert_array_equal(embeddings.user_ids, trained.dataset.users.ids)
    assert embeddings.metadata["model"] == "partial_dual"
    assert embeddings.dim == metrics["solver_rank"] >= 2
    # The file alone scores held-out votes as the run did: offset + E_c . M_i.
    test = trained.recipe.split.test
    terms = embeddings.user_vectors[test.user] * embeddings.item_vectors[test.item]
    scores = embeddings.metadata["offset"] + np.sum(terms, 1)
    # The file holds the float64 vectors rounded to float32, half an ulp each: each product is
    # within one float32 ulp of the run's, so a score within one ulp of the sum of its |terms|
    # (two, for the float64 arithmetic on either side).
    assert_close(scores, trained.recipe.predict(trained.model, test.user, test.item),
                 dtype=np.float32, ulps=2, scale=np.abs(terms).sum(1).max())


def test_run_directory_logs_every_iteration_and_reloads(trained):
    run_dir = trained.run_dir
    lines = (run_dir / "logs" / "solver.csv").read_text().splitlines()
    assert lines[0].startswith("iteration,cost,grad_norm,gap,relative_gap,rank")
    # One row per solver iteration, plus the start and each rank increase's starting point.
    metrics = trained.metrics
    assert len(lines) - 1 == 1 + metrics["solver_iterations"] + metrics["solver_rank_increases"]
    assert not (run_dir / "backup").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["protocol"] == "ratings"
    assert evaluate_run(run_dir)["test_rmse"] == pytest.approx(trained.metrics["test_rmse"])


def test_solver_csv_keeps_the_trust_region_step_details(trained):
    """The first row (the start) has no step details; the rows after it do, and their columns
    (rho, radius, accepted, inner iterations) were once dropped by a header taken from row 1."""
    with (trained.run_dir / "logs" / "solver.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for column in ("rho", "radius", "accepted", "inner_iterations"):
        assert column in rows[0], sorted(rows[0])
    steps = [row for row in rows if row["rho"] != ""]
    assert len(steps) == trained.metrics["solver_iterations"]
    assert all(float(row["radius"]) > 0 for row in steps)


def test_printed_log_csv_and_metrics_count_the_same_solver_iterations(trained_and_printed):
    """Rank increases are not iterations, in the stop message, the progress lines,
    logs/solver.csv and metrics.json alike (they once said 71 and 92 for one fit)."""
    trained, printed = trained_and_printed
    metrics = trained.metrics
    assert metrics["solver_rank_increases"] >= 1  # the case that went wrong: rank increases
    stop = re.search(r"stopped: gap_tolerance after (\d+) solver iterations and (\d+) rank "
                     r"increases, rank (\d+)", printed)
    assert stop, printed[-500:]
    assert [int(n) for n in stop.groups()] == [metrics["solver_iterations"],
                                               metrics["solver_rank_increases"],
                                               metrics["solver_rank"]]
    assert int(re.findall(r"^iter +(\d+)", printed, re.M)[-1]) == metrics["solver_iterations"]
    assert printed.count("\nrank ") == metrics["solver_rank_increases"]
    with (trained.run_dir / "logs" / "solver.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert int(rows[-1]["iteration"]) == metrics["solver_iterations"]
    assert sum(1 for row in rows if row["event"]) == metrics["solver_rank_increases"]
    assert metrics["solver_iterations"] < trained.recipe.model_config.max_iterations


def test_a_killed_run_resumes_from_its_last_iterate(tmp_path, monkeypatch):
    from tfrec_fashion.models.partial_dual import PartialDual

    fit = PartialDual.fit
    calls = {"n": 0}

    def killed_after_five_iterations(self, Y, U0=None, callback=None, **kwargs):
        def dying(record):
            callback(record)
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
        return fit(self, Y, U0=U0, callback=dying, **kwargs)

    monkeypatch.setattr(PartialDual, "fit", killed_after_five_iterations)
    with pytest.raises(KeyboardInterrupt):
        train(run_config(tmp_path / "run"))
    assert (tmp_path / "run" / "backup" / "solver_state.npz").exists()
    monkeypatch.setattr(PartialDual, "fit", fit)
    resumed = train(run_config(tmp_path / "run"))
    rows = (tmp_path / "run" / "logs" / "solver.csv").read_text().splitlines()[1:]
    iterations = [int(row.split(",")[0]) for row in rows]
    # The first five rows kept; the resumed start repeats the number it continues from.
    assert len(rows) > 6 and iterations[5] == iterations[4] > 0
    assert iterations == sorted(iterations)
    assert iterations[-1] == resumed.metrics["solver_iterations"] > 5
    with (tmp_path / "run" / "logs" / "solver.csv").open(newline="") as handle:
        steps = [row for row in csv.DictReader(handle) if row.get("rho")]
    assert len(steps) == resumed.metrics["solver_iterations"]  # before and after the kill
    assert resumed.metrics["solver_relative_gap"] < 1e-6


def test_export_serves_the_partial_dual_scores(trained, tmp_path):
    version = export_run(trained.run_dir, tmp_path / "exports")
    model = tf.saved_model.load(str(version))
    users = trained.dataset.users.ids[:3]
    answer = model.signatures["recommend"](
        user_id=tf.constant(users), k=tf.constant([5]), category=tf.constant([""]),
        exclude_item_ids=tf.zeros([1, 0], tf.string), exclude_seen=tf.constant([False]))
    scores = trained.model.row_factors[:3] @ trained.model.column_factors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(answer["item_ids"].numpy().astype(str),
                                  trained.dataset.items.ids[top])


def test_movielens_partial_dual_beats_the_bias_baseline(tmp_path, real_data):
    """Real ratings: held-out RMSE below user + item biases (and reported with its time)."""
    from tfrec_fashion.data.movielens import MovieLens100K

    real_data(MovieLens100K().build)  # skips with the fetch command when the wheel is absent
    result = train(run_config(tmp_path / "ml", data={"name": "movielens_100k"},
                              **ML_MODEL))
    metrics = result.metrics
    print({k: metrics[k] for k in ("test_rmse", "biases_test_rmse", "mf_test_rmse",
                                   "global_mean_test_rmse", "solver_fit_seconds",
                                   "solver_rank", "solver_iterations")})
    assert metrics["test_rmse"] < metrics["biases_test_rmse"] - 0.01
    assert metrics["biases_test_rmse"] < metrics["global_mean_test_rmse"]
    _, _, model = load_run(tmp_path / "ml")
    assert model.row_factors.shape == (943, metrics["solver_rank"])


ML_MODEL = {"C": 3.0, "centering": "biases", "gap_tolerance": 1e-4, "max_iterations": 100}
