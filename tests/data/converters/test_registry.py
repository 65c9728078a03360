"""The converter registry as the CLI uses it: ``CONVERTERS[format](*sources, out)``."""

import pytest

from tfrec_fashion import cli
from tfrec_fashion.data.converters import CONVERTERS
from tfrec_fashion.data.dataset import FashionDataset


def test_registry_names_every_format():
    assert sorted(CONVERTERS) == ["amazon", "csv", "dvbpr", "movielens", "parquet", "pinterest",
                                  "pinterest_ctl", "pinterest_stl", "polyvore_outfits",
                                  "polyvore_u", "tradesy"]
    for name, convert in CONVERTERS.items():
        assert convert.__doc__, f"{name} converter has no docstring"


def test_cli_converts_and_reports_bad_input_in_one_line(fixtures, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["data", "convert", "tradesy", str(fixtures / "tradesy/tradesy.json"),
                     "--out", str(out)]) == 0
    assert FashionDataset.load(out).counts() == {"users": 2, "items": 4, "interactions": 5}
    bad = tmp_path / "tradesy.json"
    bad.write_text("{'uid': '1'}\n")
    assert cli.main(["data", "convert", "tradesy", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "tradesy.json, line 1: missing field(s) ['lists']" in capsys.readouterr().err


def test_output_folder_may_be_given_by_keyword(fixtures, tmp_path):
    data = CONVERTERS["tradesy"](fixtures / "tradesy/tradesy.json", output_dir=tmp_path / "o")
    assert data.counts() == FashionDataset.load(tmp_path / "o").counts()
    with pytest.raises(TypeError, match="then the output folder"):
        CONVERTERS["tradesy"](fixtures / "tradesy/tradesy.json")
