"""DVBPR's Table III orderings on the planted world, from ``configs/table3_synthetic.yaml`` run
through ``tfrec-fashion table``'s own code, on world and training seeds that no tuning used.

The world (see the config) is the papers' regime: many items with few interactions each, 60%
of them released after the first time epoch, tastes mostly visual. Claims (issues #4, #14):

- all items: DVBPR and VBPR > BPR-MF > PopRank > RAND;
- cold items: the visual models beat BPR-MF by a clear margin, and DVBPR (pixels alone) ties
  VBPR (the world's features, which carry the attributes almost as well): within 0.02, not a
  win on every seed (README, Table III);
- every model stays below the oracle, and the best is close to it.

Measured (test AUC all / cold, 2 cores; seed = world and training seed; 101-105 fresh, the
config was tuned on 0-2; this test runs 101 and 102: 8.5 min, 16 with other jobs running)::

    seed  RAND       PopRank    BPR-MF     VBPR       I-TVBPR    DVBPR      Oracle
    101   .498/.487  .639/.551  .668/.560  .731/.706  .791/.759  .727/.699  .860/.840
    102   .500/.480  .612/.555  .652/.590  .724/.716  .793/.786  .734/.720  .868/.870
    103   .503/.507  .606/.561  .674/.626  .730/.683  .799/.760  .739/.697  .867/.849
    104   .505/.503  .621/.557  .637/.570  .685/.667  .748/.745  .700/.702  .836/.844
    105   .496/.488  .632/.580  .658/.588  .713/.694  .789/.774  .712/.702  .868/.862

Smallest gaps over 101-105: DVBPR - BPR-MF .054, VBPR - BPR-MF .048, BPR-MF - PopRank .016,
PopRank - RAND .103 (all items); visual - BPR-MF on cold items .057; DVBPR - VBPR on cold items
-.007 (mean +.011, sd .015; +.008, +.023, +.035 on the tuning seeds); oracle - best .088. The
margins asserted below sit under them.
"""

import json
from pathlib import Path

import pytest

from tfrec_fashion.tables import run_table

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "table3_synthetic.yaml"
SEEDS = (101, 102)  # fresh: no tuning used them (tuning: seeds 0-2)
METHODS = ["BPR-MF", "VBPR", "I-TVBPR", "DVBPR"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    results = {}
    for seed in SEEDS:
        run_dir = tmp_path_factory.mktemp(f"table_seed{seed}")
        table = run_table(CONFIG, [f"run_dir={run_dir}", f"seed={seed}", f"data.seed={seed}",
                                   "train.verbose=0"], methods=METHODS)
        label = next(iter(table.results))
        results[seed] = {method: table.results[label][method]
                         for method in table.results[label]}
        print(f"seed {seed}: " + json.dumps(results[seed]))
    return results


def auc(tables, seed, method, setting="all"):
    return tables[seed][method][setting]


@pytest.mark.parametrize("seed", SEEDS)
def test_all_items_ordering_of_table_three(tables, seed):
    assert auc(tables, seed, "DVBPR") > auc(tables, seed, "BPR-MF") + 0.03
    assert auc(tables, seed, "VBPR") > auc(tables, seed, "BPR-MF") + 0.03
    assert auc(tables, seed, "BPR-MF") > auc(tables, seed, "PopRank") + 0.01
    assert auc(tables, seed, "PopRank") > auc(tables, seed, "RAND") + 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_visual_models_win_on_cold_items(tables, seed):
    for visual in ("VBPR", "DVBPR"):
        assert auc(tables, seed, visual, "cold") > auc(tables, seed, "BPR-MF", "cold") + 0.04


@pytest.mark.parametrize("seed", SEEDS)
def test_dvbpr_ties_vbpr_on_cold_items(tables, seed):
    # What the seeds support: DVBPR within noise of VBPR on cold items, not a win on every seed.
    assert auc(tables, seed, "DVBPR", "cold") > auc(tables, seed, "VBPR", "cold") - 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_every_model_is_below_the_oracle_and_the_best_is_close(tables, seed):
    oracle = auc(tables, seed, "Oracle")
    models = {m: auc(tables, seed, m) for m in METHODS}
    assert all(value < oracle for value in models.values()), (models, oracle)
    assert max(models.values()) > oracle - 0.1, (models, oracle)
