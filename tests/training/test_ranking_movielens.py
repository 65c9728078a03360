"""BPR-MF on MovieLens-100K (real interactions), on the VBPR / DVBPR protocol, through
``tfrec-fashion table configs/table3_movielens.yaml``'s own code: reported beside PopRank and
RAND, and it must beat both (personalised beats global on real data)."""

from pathlib import Path

import pytest

from tfrec_fashion.tables import run_table

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "table3_movielens.yaml"


def test_bpr_mf_beats_popularity_and_random_on_movielens(tmp_path, real_data):
    table = real_data(run_table, CONFIG, [f"run_dir={tmp_path}", "train.verbose=0"])
    row = table.results["MovieLens-100K"]
    print({method: row[method] for method in row})
    assert set(row) == {"RAND", "PopRank", "BPR-MF"}  # no images: no visual rows, no oracle
    assert abs(row["RAND"]["all"] - 0.5) < 0.03
    assert row["PopRank"]["all"] > row["RAND"]["all"] + 0.2
    assert row["BPR-MF"]["all"] > row["PopRank"]["all"] + 0.01
    # Tuned on validation (issue 14): test AUC 0.884; the untuned lr 0.02 / l2 0.05 got 0.853,
    # Cornac's BPR 0.888 on this split (as the issue reports).
    assert row["BPR-MF"]["all"] > 0.87
    assert (tmp_path / "table.md").read_text().count("MovieLens-100K") == 1
