"""Table configs: parsing, per-method runs and folders, every configs/table*.yaml, a tiny table."""

import json
from pathlib import Path

import pytest

from tfrec_fashion.cli import config_class_for
from tfrec_fashion.config import load_config
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.tables import TableConfig, run_table

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TABLE_YAML = """\
run_dir: {run_dir}
seed: 3
dataset_label: tiny world
data: {{name: latent_factor, n_users: 60, n_items: 50, rank: 2, interactions_per_user: 10}}
train: {{epochs: 2, batch_size: 64, verbose: 0}}
methods:
  BPR-MF:
    model: {{name: bpr_mf}}
  I-VBPR:
    model: {{name: bpr_mf, latent_dim: 4}}
    train: {{epochs: 5, batch_size: 32, verbose: 0}}
"""


def _write(tmp_path, text):
    path = tmp_path / "table.yaml"
    path.write_text(text)
    return path


def test_table_config_parses_methods_and_per_method_train(tmp_path):
    config = load_config(TableConfig, _write(tmp_path, TABLE_YAML.format(run_dir=tmp_path / "t")))
    assert list(config.methods) == ["BPR-MF", "I-VBPR"]
    assert config.data.name == "latent_factor" and config.data.n_users == 60
    assert config.dataset_label == "tiny world" and config.seed == 3
    assert (config.proposed, config.reference) == ("DVBPR", "BPR-MF")  # defaults
    assert config.methods["BPR-MF"].model.name == "bpr_mf"
    assert config.methods["BPR-MF"].train is None
    assert config.methods["I-VBPR"].model.latent_dim == 4

    bpr = config.run_config("BPR-MF")
    assert bpr.train is config.train and bpr.train.epochs == 2
    assert bpr.model is config.methods["BPR-MF"].model
    assert bpr.data is config.data and bpr.seed == 3
    assert Path(bpr.run_dir) == tmp_path / "t" / "bpr_mf"
    ivbpr = config.run_config("I-VBPR")
    assert (ivbpr.train.epochs, ivbpr.train.batch_size) == (5, 32)
    assert Path(ivbpr.run_dir) == tmp_path / "t" / "i_vbpr"


def test_table_config_errors(tmp_path):
    no_methods = "data: {name: latent_factor}\nmethods: {}\n"
    with pytest.raises(ConfigError, match=r"the table config names no methods"):
        load_config(TableConfig, _write(tmp_path, no_methods))
    with pytest.raises(ConfigError, match=r"names no methods"):
        load_config(TableConfig, _write(tmp_path, "seed: 1\n"))
    with pytest.raises(ConfigError, match=r"unknown model 'methods\.A\.model\.name: bpr_m'"):
        load_config(TableConfig, _write(tmp_path, "methods: {A: {model: {name: bpr_m}}}\n"))
    with pytest.raises(ConfigError, match=r"unknown key 'methods\.A\.epochs'"):
        load_config(TableConfig, _write(tmp_path, "methods: {A: {model: {name: bpr_mf}, "
                                                  "epochs: 3}}\n"))


def test_cli_reads_table_files_as_table_configs():
    assert config_class_for("configs/table3_synthetic.yaml") is TableConfig
    assert config_class_for("table_anything.yaml") is TableConfig


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("table*.yaml")), ids=lambda p: p.name)
def test_every_table_config_in_configs_loads(path):
    config = load_config(TableConfig, path)
    assert config.methods
    for method in config.methods:
        assert Path(config.run_config(method).run_dir).parent == Path(config.run_dir)


def test_a_design_gans_dvbpr_run_may_name_an_embedding_run_of_the_table():
    # configs/table4_design.yaml: the GAN reads the DVBPR run the table trains first.
    config = load_config(TableConfig, CONFIGS / "table4_design.yaml")
    gan, dvbpr = config.run_config("LSGAN"), config.run_config("DVBPR")
    assert gan.model.dvbpr_run == dvbpr.run_dir == str(Path(config.run_dir) / "dvbpr")
    assert gan.data == dvbpr.data  # one data section: the GAN accepts the run
    assert list(config.methods) == ["LSGAN"]  # the DVBPR run is not tabulated


def test_configs_folder_has_table_configs():
    assert (CONFIGS / "table3_synthetic.yaml").is_file()  # so the glob above is not empty


def test_run_table_trains_writes_and_then_reuses(tmp_path, capsys, monkeypatch):
    text = TABLE_YAML.format(run_dir=tmp_path / "t").split("  I-VBPR:")[0]  # BPR-MF only
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"unknown method 'VBPR'; the config has \['BPR-MF'\]"):
        run_table(path, methods=["VBPR"])

    table = run_table(path)
    assert "training bpr_mf on tiny world" in capsys.readouterr().out
    run_dir = tmp_path / "t"
    markdown = (run_dir / "table.md").read_text()
    saved = json.loads((run_dir / "table.json").read_text())
    for column in ("BPR-MF", "RAND", "PopRank", "Oracle"):
        assert column in markdown and column in json.dumps(saved)
        assert 0.0 <= table.auc("tiny world", column, "all") <= 1.0
    assert "VisRank" not in table.methods  # the latent-factor world has no item features
    assert table.methods.index("Oracle") == len(table.methods) - 1
    # the oracle knows the planted scores; it beats random guessing by far
    assert table.auc("tiny world", "Oracle", "all") > 0.8
    metrics = run_dir / "bpr_mf" / "metrics.json"
    assert metrics.is_file()
    stamp = metrics.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was retrained")

    monkeypatch.setattr("tfrec_fashion.training.harness.train", no_training)
    again = run_table(path)
    assert "=== BPR-MF: reusing the finished run in" in capsys.readouterr().out
    assert metrics.stat().st_mtime_ns == stamp
    assert again.results == table.results
