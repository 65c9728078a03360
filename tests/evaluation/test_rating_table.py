"""The rating table built from finished runs' metrics."""

import json
import math

import pytest

from tfrec_fashion.evaluation.rating_table import RatingTable


def _runs():
    baselines = {"global_mean_test_rmse": 1.13, "global_mean_test_mae": 0.94,
                 "global_mean_seconds": 0.0, "biases_test_rmse": 0.93, "biases_test_mae": 0.74,
                 "biases_seconds": 0.03, "mf_test_rmse": 0.915, "mf_test_mae": 0.72,
                 "mf_seconds": 1.1}
    return {"Partial Dual": {"test_rmse": 0.91, "test_mae": 0.71, "fit_seconds": 12.0,
                             **baselines},
            "StyNet": {"test_rmse": 0.95, "test_mae": 0.75, "fit_seconds": 40.0, **baselines}}


def test_rows_are_baselines_then_models_with_the_best_in_bold(tmp_path):
    table = RatingTable.from_runs("MovieLens-100K", _runs())
    assert list(table.rows) == ["Global mean", "User + item biases",
                                "Matrix factorisation (ALS)", "Partial Dual", "StyNet"]
    assert table.best("test_rmse") == "Partial Dual"
    assert table.rows["Partial Dual"]["seconds"] == 12.0  # the run's own fit time
    assert table.rows["StyNet"]["seconds"] == 40.0
    text = table.format_markdown()
    assert "| Partial Dual | **0.9100** | **0.7100** | 12.0 |" in text
    assert "vote AUC" not in text  # 1..5 ratings: no vote columns
    markdown, data = table.write(tmp_path)
    assert json.loads(data.read_text())["best"]["test_rmse"] == "Partial Dual"
    assert markdown.read_text().startswith("Held-out ratings on MovieLens-100K")


def test_vote_worlds_show_aucs_and_the_oracle_last():
    runs = {"Partial Dual": {"test_rmse": 0.9, "test_auc": 0.7, "test_customer_auc": 0.68,
                             "biases_test_rmse": 0.95, "biases_test_auc": 0.6,
                             "oracle_test_auc": 0.8, "oracle_test_customer_auc": 0.79}}
    table = RatingTable.from_runs("planted world", runs)
    lines = table.format_markdown().splitlines()
    assert lines[-1].startswith("| Oracle (planted truth) | - | 0.8000 | 0.7900")
    assert table.best("test_auc") == "Partial Dual"
    assert math.isnan(table.rows["User + item biases"].get("test_customer_auc", math.nan))


def test_a_method_twice_is_refused():
    table = RatingTable("x")
    table.add("A", {"test_rmse": 1.0})
    with pytest.raises(ValueError, match="already in the table"):
        table.add("A", {"test_rmse": 0.5})


def test_a_solver_row_names_its_rank_iterations_and_rank_increases():
    runs = _runs()
    runs["Partial Dual"].update(solver_rank=22, solver_iterations=71, solver_rank_increases=21)
    table = RatingTable.from_runs("MovieLens-100K", runs)
    note = "rank found: 22, 71 solver iterations, 21 rank increases"
    text = table.format_markdown()
    assert f"| Partial Dual ({note}) | **0.9100** | **0.7100** | 12.0 |" in text
    assert "| StyNet | 0.9500 |" in text
    assert table.to_dict()["notes"] == {"Partial Dual": note}
    assert list(table.rows)[3] == "Partial Dual"  # the key stays the method's name
