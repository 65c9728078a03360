"""PAN's Tables 1-2 as a user runs them: ``tfrec-fashion table configs/table_pan.yaml`` trains the
non-personalised model, FHN, the paper's ablation and UL + AN, and prints them beside the
paper's Polyvore-630 numbers above the outfit protocol's table. The tiny test runs the shipped
config on a tiny world for an epoch; the slow one checks, over 3 seeds of the shipped world, that
the user-aware attention pays: UL + AN (PAN without its hard negatives) beats FHN and the
non-personalised model on FITB and AUC."""

import json
from pathlib import Path

import pytest

from tfrec_fashion.cli import main
from tfrec_fashion.tables import run_table

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "table_pan.yaml"
PAPER = {"FHN (None)": ("0.6283", "0.9109"), "UL": ("0.6399", "0.9189"),
         "UL + HN": ("0.6429", "0.9235"), "PAN": ("0.6458", "0.9259")}
TINY = ["data.n_users=40", "data.n_items=90", "data.outfits_per_user=8", "train.epochs=1"]


def test_cli_table_prints_every_method_beside_the_papers_numbers(tmp_path, capsys):
    sets = [arg for value in [f"run_dir={tmp_path}", *TINY] for arg in ("--set", value)]
    assert main(["table", str(CONFIG), *sets]) == 0
    out = capsys.readouterr().out
    layout, table = out.split("Held-out outfits")
    assert "Ours beside PAN's Table 2 (Polyvore-630" in layout
    for method in ("Non-personalised", "FHN (None)", "UL", "UL + HN", "UL + AN", "PAN"):
        row = next(line for line in layout.splitlines() if line.startswith(f"| {method} |"))
        cells = [cell.strip() for cell in row.split("|")[2:-1]]
        assert len(cells) == 6, row  # ours and the paper's FITB, AUC, NDCG
        assert all(0.0 <= float(cells[i]) <= 1.0 for i in (0, 2, 4)), row
        expected = PAPER.get(method, ("-", "-"))
        assert (cells[1], cells[3]) == expected, row
    for row in ("Random", "Global oracle", "Oracle (planted truth)", "PAN"):
        assert f"| {row}" in table, row
    saved = json.loads((tmp_path / "table.json").read_text())
    assert saved["paper_values"]["rows"]["PAN"]["test_fitb"]["paper"] == 0.6458


@pytest.mark.slow
def test_user_aware_attention_beats_fhn_and_the_non_personalised_model(tmp_path):
    """The shipped world, world and run seeds 1-3, looked at only after the config was fixed
    (on seed 0); about 2 minutes a seed. UL + AN's margins measured on them: FITB over FHN
    0.016, 0.097, 0.072 and over the non-personalised model 0.040, 0.080, 0.067; AUC over FHN
    0.018, 0.051, 0.029 and over the non-personalised model 0.045, 0.068, 0.038. Each bound is
    half the smallest. PAN itself (with hard negatives) is not asserted: against FHN it was
    -0.012, +0.048, +0.008 on FITB and +0.001, +0.031, -0.004 on AUC (README, PAN)."""
    rivals = ("FHN (None)", "Non-personalised")
    bounds = {("FHN (None)", "fitb"): 0.008, ("FHN (None)", "auc"): 0.009,
              ("Non-personalised", "fitb"): 0.02, ("Non-personalised", "auc"): 0.019}
    for seed in (1, 2, 3):
        table = run_table(CONFIG, [f"run_dir={tmp_path / str(seed)}", f"seed={seed}",
                                   f"data.seed={seed}"], methods=["UL + AN", *rivals])
        rows = table.table.rows
        for (rival, metric), bound in bounds.items():
            margin = rows["UL + AN"][f"test_{metric}"] - rows[rival][f"test_{metric}"]
            assert margin > bound, (seed, rival, metric, rows)
