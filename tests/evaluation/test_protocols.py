"""The protocol registry as tables and the demo use it: each protocol names an evaluation that
builds on a dataset, runs are read by the protocol their metrics.json records (old files
without one by the single fallback), and each protocol's table is built from runs."""

import dataclasses
import json

import pytest

from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world
from tfrec_fashion.errors import ConfigError, DataError
from tfrec_fashion.evaluation.implicit import ImplicitEvaluation
from tfrec_fashion.evaluation.protocols import (PROTOCOLS, Protocol, baseline_test_aucs,
                                                get_protocol, protocol_of, summary_columns)
from tfrec_fashion.evaluation.ranking_table import RankingTable
from tfrec_fashion.evaluation.rating_table import RatingTable
from tfrec_fashion.evaluation.ratings import RatingEvaluation

IMPLICIT_RUN = {"test_auc": 0.8, "cold_test_auc": 0.7, "random_test_auc": 0.5,
                "random_cold_test_auc": 0.5, "popularity_test_auc": 0.6,
                "popularity_cold_test_auc": 0.4, "oracle_test_auc": 0.95,
                "oracle_cold_test_auc": 0.9, "best_epoch": 3}
RATING_RUN = {"test_rmse": 0.9, "test_mae": 0.7, "test_auc": 0.75, "fit_seconds": 1.5,
              "biases_test_rmse": 1.0, "biases_test_auc": 0.7, "biases_seconds": 0.1,
              "oracle_test_auc": 0.97}


@pytest.fixture(scope="module")
def world():
    return make_world(SyntheticWorldConfig.tiny())


def test_every_protocol_is_registered_under_its_name_with_an_evaluation_class():
    assert {"implicit", "ratings"} <= set(PROTOCOLS)
    for name, protocol in PROTOCOLS.items():
        assert isinstance(protocol, Protocol) and protocol.name == name
        assert isinstance(protocol.evaluation_class(), type), name
        assert protocol.summary_columns and callable(protocol.table)
    assert get_protocol("implicit").evaluation_class() is ImplicitEvaluation
    assert get_protocol("ratings").evaluation_class() is RatingEvaluation


@pytest.mark.parametrize("name", ["implicit", "ratings"])
def test_evaluations_build_on_a_dataset_and_refuse_one_they_cannot_split(world, name):
    evaluation = get_protocol(name).evaluation_class()(world, seed=0, model_name="m")
    assert len(evaluation.split.train) > len(evaluation.split.test) > 0
    empty = dataclasses.replace(world, interactions=None, ratings=None)
    with pytest.raises(DataError, match="model m (needs implicit interactions|learns from "
                                        "explicit ratings); dataset 'synthetic[^']*' has none"):
        get_protocol(name).evaluation_class()(empty, seed=0, model_name="m")


def test_runs_are_read_by_their_recorded_protocol():
    assert protocol_of({**RATING_RUN, "protocol": "ratings"}) is PROTOCOLS["ratings"]
    # The recorded name wins over any metric key.
    assert protocol_of({**RATING_RUN, "protocol": "implicit"}) is PROTOCOLS["implicit"]
    with pytest.raises(ConfigError, match=r"unknown evaluation protocol 'lookbook'; known: .*"
                                          r"Received: protocol='lookbook'"):
        protocol_of({"protocol": "lookbook"})


def test_metrics_written_before_protocols_were_recorded_still_find_theirs():
    assert protocol_of(IMPLICIT_RUN) is PROTOCOLS["implicit"]
    assert protocol_of(RATING_RUN) is PROTOCOLS["ratings"]


def test_each_protocol_builds_its_table_from_runs(tmp_path):
    runs = {"BPR-MF": IMPLICIT_RUN, "DVBPR": {**IMPLICIT_RUN, "test_auc": 0.85}}
    table = protocol_of(IMPLICIT_RUN).table("world", runs, proposed="DVBPR",
                                             reference="BPR-MF")
    assert isinstance(table, RankingTable)
    assert table.methods == ["RAND", "PopRank", "BPR-MF", "DVBPR", "Oracle"]  # no VisRank
    assert table.auc("world", "DVBPR", "all") == 0.85
    assert table.auc("world", "Oracle", "cold") == 0.9
    assert table.improvement("world", "all", over="BPR-MF") == pytest.approx(100 * 0.05 / 0.8)
    rating = protocol_of(RATING_RUN).table("world", {"StyNet": RATING_RUN}, proposed="DVBPR",
                                           reference="BPR-MF")
    assert isinstance(rating, RatingTable)
    assert list(rating.rows) == ["User + item biases", "StyNet"]
    assert rating.oracle == {"test_auc": 0.97}
    rating.write(tmp_path)
    assert json.loads((tmp_path / "table.json").read_text())["best"]["test_rmse"] == "StyNet"


def test_training_curves_reference_the_rows_beside_the_model():
    assert baseline_test_aucs({**IMPLICIT_RUN, "protocol": "implicit"}) == {
        "random": 0.5, "popularity": 0.6, "oracle": 0.95}
    assert baseline_test_aucs(RATING_RUN) == {"biases": 0.7, "oracle": 0.97}


def test_summary_columns_follow_the_registry_each_once():
    columns = summary_columns()
    assert columns[:7] == ("test_auc", "cold_test_auc", "oracle_test_auc",
                           "oracle_cold_test_auc", "popularity_test_auc",
                           "popularity_cold_test_auc", "test_rmse")
    assert len(columns) == len(set(columns))
