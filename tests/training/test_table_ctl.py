"""Complete the look's tables as a user runs them: ``tfrec-fashion table configs/table_ctl.yaml``
trains the style embedding and its no-batch-norm ablation and prints them beside the paper's
~60% triplet accuracy, above the protocol's table (random, similar as complementary, the
oracles) and the similar-items precision. The tiny test runs the shipped config on a tiny world
for an epoch; the recipe test trains the shipped planted world (seed 0, on which the config was
chosen) and holds it above random and similar-as-complementary; the slow one does the same on
fresh seeds 2-4 of both the planted and the Fashion-MNIST world."""

import json
from pathlib import Path

import pytest

from tfrec_fashion.cli import main
from tfrec_fashion.tables import run_table

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PLANTED, FASHION_MNIST = CONFIGS / "table_ctl.yaml", CONFIGS / "table_ctl_fashion_mnist.yaml"
TINY = ["data.n_users=40", "data.n_items=90", "data.outfits_per_user=8", "train.epochs=1"]
MODEL = "Complete the look"
RIVALS = ("Random", "Similar as complementary (EfficientNet-Lite0)")


def margins(table) -> dict[tuple[str, str], float]:
    rows = table.table.rows
    return {(rival, metric): rows[MODEL][f"test_{metric}"] - rows[rival][f"test_{metric}"]
            for rival in RIVALS for metric in ("triplet_accuracy", "fitb")}


def test_cli_table_prints_both_methods_the_reference_rows_and_similar_items(tmp_path, capsys):
    sets = [arg for value in [f"run_dir={tmp_path}", *TINY] for arg in ("--set", value)]
    assert main(["table", str(PLANTED), *sets]) == 0
    out = capsys.readouterr().out
    layout, table = out.split("Complete the look: held-out outfits")
    assert "Ours beside the paper's section 2.2.5" in layout
    row = next(line for line in layout.splitlines() if line.startswith(f"| {MODEL} |"))
    cells = [cell.strip() for cell in row.split("|")[2:-1]]
    assert 0.0 <= float(cells[0]) <= 1.0 and cells[1] == "0.5600", row
    for name in (*RIVALS, MODEL, "No batch norm", "Global oracle", "Oracle (planted truth)",
                 "EfficientNet-Lite0 cosine", "Raw pixels cosine", "Perfect ranking",
                 "Style embedding (No batch norm)"):
        assert f"| {name}" in table, name
    saved = json.loads((tmp_path / "table.json").read_text())
    assert saved["paper_values"]["rows"][MODEL]["test_triplet_accuracy"]["paper"] == 0.56
    assert 0.0 < saved["rows"]["No batch norm"]["style_mean_cosine"] <= 1.0
    metrics = json.loads((tmp_path / "complete_the_look" / "metrics.json").read_text())
    assert metrics["protocol"] == "complete_the_look"


def test_the_model_beats_random_and_similar_as_complementary_on_the_planted_world(tmp_path):
    """Seed 0 of the shipped world, the one the config was chosen on: margins there were
    triplet accuracy 0.186 / 0.216 and FITB 0.196 / 0.254 over similar-as-complementary /
    random; the bound is about half the smallest."""
    table = run_table(PLANTED, [f"run_dir={tmp_path}"], methods=[MODEL])
    for key, margin in margins(table).items():
        assert margin > 0.09, (key, table.table.rows)
    assert table.table.rows[MODEL]["test_triplet_accuracy"] > 0.6


@pytest.mark.slow
@pytest.mark.parametrize("config, bound", [(PLANTED, 0.06), (FASHION_MNIST, 0.03)],
                         ids=["planted", "fashion_mnist"])
def test_the_model_beats_the_baselines_on_fresh_seeds(tmp_path, config, bound):
    """World and run seeds 2-4, not used to choose anything. Margins over similar-as-
    complementary and random measured on them (triplet accuracy, FITB): see the README; each
    bound is about half the smallest."""
    for seed in (2, 3, 4):
        table = run_table(config, [f"run_dir={tmp_path / str(seed)}", f"seed={seed}",
                                   f"data.seed={seed}"], methods=[MODEL])
        for key, margin in margins(table).items():
            assert margin > bound, (seed, key, table.table.rows)
