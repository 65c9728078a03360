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
@pytest.mark.parametrize("config, bound", [(PLANTED, 0.06), (FASHION_MNIST, 0.02)],
                         ids=["planted", "fashion_mnist"])
def test_the_model_beats_the_baselines_on_fresh_seeds(tmp_path, config, bound):
    """World and run seeds 2-4, not used to choose anything; about 15 s (planted) and 40 s
    (Fashion-MNIST, with the no-batch-norm run) a seed. Margins measured on them, seeds 2, 3, 4:

    - planted: triplet accuracy over similar-as-complementary 0.120, 0.155, 0.124 and over
      random 0.179, 0.168, 0.156; FITB 0.190, 0.166, 0.155 and 0.288, 0.266, 0.163;
    - Fashion-MNIST: triplet accuracy 0.067, 0.074, 0.071 and 0.065, 0.088, 0.045; FITB 0.090,
      0.093, 0.115 and 0.073, 0.148, 0.143.

    Each bound is about half the smallest (0.120, 0.045). On Fashion-MNIST's EfficientNet-Lite0
    features batch norm spreads the embedding: without it the mean pairwise cosine was higher
    by 0.128, 0.111, 0.095 (0.080 and 0.134 on seeds 0 and 1); the bound is 0.045. (On the
    planted world's attributes the two were within 0.01 on seeds 3 and 4: not asserted.)"""
    fashion_mnist = config == FASHION_MNIST
    for seed in (2, 3, 4):
        table = run_table(config, [f"run_dir={tmp_path / str(seed)}", f"seed={seed}",
                                   f"data.seed={seed}"],
                          methods=[MODEL, "No batch norm"] if fashion_mnist else [MODEL])
        for key, margin in margins(table).items():
            assert margin > bound, (seed, key, table.table.rows)
        # Similar items: EfficientNet-Lite0 0.43-0.44 (planted, same colour) and 0.57-0.61
        # (Fashion-MNIST, same class) against random 0.10 and 0.26-0.29 on these seeds.
        similar = table.table.similar
        assert similar["EfficientNet-Lite0 cosine"] > similar["Random"] + 0.2, similar
        if fashion_mnist:
            rows = table.table.rows
            spread = (rows["No batch norm"]["style_mean_cosine"]
                      - rows[MODEL]["style_mean_cosine"])
            assert spread > 0.045, (seed, rows)
