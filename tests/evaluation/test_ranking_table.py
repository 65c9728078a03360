"""Table III: bold on the best non-oracle cell, improvements as the paper computes them (its
Amazon Fashion row), the oracle shown but never compared, and a JSON / file round trip."""

import json
import math

import pytest

from tfrec_fashion.evaluation.ranking_table import RankingTable

# DVBPR Table III, Amazon Fashion (All Items, Cold Items).
AMAZON_FASHION = {
    "RAND": (0.5, 0.5),
    "PopRank": (0.5849, 0.3905),
    "WARP": (0.6065, 0.5030),
    "BPR-MF": (0.6278, 0.5514),
    "VisRank": (0.6839, 0.6807),
    "FM": (0.7093, 0.7088),
    "VBPR": (0.7479, 0.7319),
    "DVBPR": (0.7964, 0.7718),
}


def paper_table(oracle=None):
    table = RankingTable()
    for method, (all_auc, cold_auc) in AMAZON_FASHION.items():
        table.add("Amazon Fashion", method, all_auc=all_auc, cold_auc=cold_auc)
    if oracle is not None:
        table.add("Amazon Fashion", "Oracle", all_auc=oracle[0], cold_auc=oracle[1])
    return table


def rows(markdown):
    """The table's lines split into stripped cells (header first, alignment line dropped)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for i, line in enumerate(lines)
            if i != 1]


def test_improvements_match_the_paper():
    table = paper_table()
    # (0.7964 - 0.6278) / 0.6278 = 26.86 %, (0.7718 - 0.5514) / 0.5514 = 39.97 %
    assert table.improvement("Amazon Fashion", "all", "BPR-MF") == pytest.approx(26.856, abs=1e-3)
    assert table.improvement("Amazon Fashion", "cold", "BPR-MF") == pytest.approx(39.971, abs=1e-3)
    # best other method is VBPR in both rows: 6.48 % and 5.45 %
    assert table.best("Amazon Fashion", "all", exclude=("DVBPR",)) == ["VBPR"]
    assert table.improvement("Amazon Fashion", "all") == pytest.approx(6.485, abs=1e-3)
    assert table.improvement("Amazon Fashion", "cold") == pytest.approx(5.452, abs=1e-3)


def test_markdown_is_shaped_like_table_iii():
    header, all_row, cold_row = rows(paper_table().format_markdown())
    assert header == ["Dataset", "Setting", *AMAZON_FASHION, "DVBPR vs. BPR-MF", "DVBPR vs. best"]
    assert all_row == ["Amazon Fashion", "All Items", "0.5000", "0.5849", "0.6065", "0.6278",
                       "0.6839", "0.7093", "0.7479", "**0.7964**", "26.9%", "6.5%"]
    assert cold_row == ["", "Cold Items", "0.5000", "0.3905", "0.5030", "0.5514", "0.6807",
                        "0.7088", "0.7319", "**0.7718**", "40.0%", "5.5%"]


def test_bold_follows_the_best_method_and_negative_improvements_print():
    table = RankingTable()
    table.add("World", "BPR-MF", all_auc=0.70, cold_auc=0.40)
    table.add("World", "VBPR", all_auc=0.80, cold_auc=0.60)
    table.add("World", "DVBPR", all_auc=0.76, cold_auc=0.60)
    _, all_row, cold_row = rows(table.format_markdown())
    assert all_row[2:] == ["0.7000", "**0.8000**", "0.7600", "8.6%", "-5.0%"]
    assert cold_row[2:] == ["0.4000", "**0.6000**", "**0.6000**", "50.0%", "0.0%"]  # exact tie


def test_oracle_is_shown_last_but_never_bold_nor_compared():
    table = paper_table(oracle=(0.99, math.nan))
    header, all_row, cold_row = rows(table.format_markdown())
    assert header[-3:] == ["DVBPR vs. BPR-MF", "DVBPR vs. best", "Oracle"]
    assert all_row[-4:] == ["**0.7964**", "26.9%", "6.5%", "0.9900"]
    assert cold_row[-1] == "n/a"
    assert table.best("Amazon Fashion", "all") == ["DVBPR"]
    assert table.improvement("Amazon Fashion", "all") == pytest.approx(6.485, abs=1e-3)


def test_improvement_columns_need_their_methods():
    table = RankingTable()
    table.add("World", "RAND", all_auc=0.5)
    table.add("World", "PopRank", all_auc=0.6)
    header, all_row, cold_row = rows(table.format_markdown())
    assert header == ["Dataset", "Setting", "RAND", "PopRank"]
    assert all_row[2:] == ["0.5000", "**0.6000**"]
    assert cold_row[2:] == ["n/a", "n/a"]  # cold AUC not given: nothing is bold
    table.add("World", "DVBPR", all_auc=0.7)
    assert rows(table.format_markdown())[0][-1] == "DVBPR vs. best"  # no BPR-MF: no "vs. d"


def test_json_round_trip_keeps_values_order_and_nan(tmp_path):
    table = paper_table(oracle=(0.99, math.nan))
    table.add("Synthetic", "DVBPR", all_auc=0.8)
    table.add("Synthetic", "Extra", all_auc=0.6, cold_auc=0.55)
    text = table.to_json()
    data = json.loads(text)  # strict JSON: NaN is null
    assert data["results"]["Amazon Fashion"]["Oracle"]["cold"] is None
    assert data["derived"]["Amazon Fashion"]["all"]["best"] == ["DVBPR"]
    assert data["derived"]["Amazon Fashion"]["all"]["improvement_over_best_other_percent"] == \
        pytest.approx(6.485, abs=1e-3)
    again = RankingTable.from_json(text)
    assert again.methods == [*AMAZON_FASHION, "Oracle", "Extra"]
    assert again.to_dict() == table.to_dict()
    assert again.format_markdown() == table.format_markdown()

    markdown_path, json_path = table.write(tmp_path / "tables" / "table_iii")
    assert markdown_path.read_text() == table.format_markdown()
    assert RankingTable.from_json(json_path.read_text()).to_dict() == table.to_dict()
    assert {markdown_path.name, json_path.name} == {"table.md", "table.json"}


def test_bad_input_says_what_was_received():
    table = paper_table()
    with pytest.raises(ValueError, match=r"in \[0, 1\] or NaN. Received: all_auc=1.2"):
        table.add("World", "VBPR", all_auc=1.2)
    with pytest.raises(ValueError, match="real number. Received: cold_auc=True"):
        table.add("World", "VBPR", all_auc=0.5, cold_auc=True)
    with pytest.raises(ValueError, match="already has results.*Received: method='VBPR'"):
        table.add("Amazon Fashion", "VBPR", all_auc=0.5)
    with pytest.raises(ValueError, match="non-empty string. Received: method=''"):
        table.add("World", "", all_auc=0.5)
    with pytest.raises(ValueError, match="Received: setting='warm'"):
        table.best("Amazon Fashion", "warm")
    with pytest.raises(ValueError, match="Unknown dataset.*Received: dataset='Nope'"):
        table.auc("Nope", "VBPR", "all")
    assert list(table.results) == ["Amazon Fashion"]  # rejected rows left nothing behind
