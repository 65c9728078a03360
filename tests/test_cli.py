"""The tfrec-fashion command as a user runs it: help everywhere, every option parses, one-line
errors."""

import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tfrec_fashion import cli
from tfrec_fashion.cli import build_parser, main

SUBCOMMANDS = ["data", "train", "evaluate", "table", "export", "check-ops", "serve", "query",
               "visualize", "report", "design", "newcomers", "demo"]
DATA_ACTIONS = ["fetch", "synth", "convert", "info"]


def run_cli(*args, cwd=None):
    """Runs the installed console script (falls back to `python -m tfrec_fashion.cli`)."""
    exe = shutil.which("tfrec-fashion", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "tfrec_fashion.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_top_level_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("argv", [[name, "--help"] for name in SUBCOMMANDS]
                         + [["data", action, "--help"] for action in DATA_ACTIONS])
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tfrec-fashion " + " ".join(argv[:-1]))


# Per subcommand: a command line, then every attribute it parses to (besides the command names
# and the handler). The bare line shows the defaults; the full one sets every option.
PARSES = [
    ("data fetch", [], {"names": []}),
    ("data fetch", ["movielens-100k", "all"], {"names": ["movielens-100k", "all"]}),
    ("data synth", ["--out", "w"], {"preset": "small", "config": None, "out": "w", "set": []}),
    ("data synth", ["--preset", "tiny", "--config", "s.yaml", "--out", "w", "--set", "seed=3",
                    "--set", "n_users=9"],
     {"preset": "tiny", "config": "s.yaml", "out": "w", "set": ["seed=3", "n_users=9"]}),
    ("data convert", ["movielens", "u.data", "--out", "ml"],
     {"format": "movielens", "sources": ["u.data"], "out": "ml", "user_col": None,
      "item_col": None, "rating_col": None, "timestamp_col": None, "sep": None,
      "rating_range": None, "name": None}),
    ("data convert", ["csv", "a.csv", "b.csv", "--out", "o", "--user-col", "c", "--item-col",
                      "s", "--rating-col", "r", "--timestamp-col", "t", "--sep", "tab",
                      "--rating-range", "0.5", "5", "--name", "shop"],
     {"format": "csv", "sources": ["a.csv", "b.csv"], "out": "o", "user_col": "c",
      "item_col": "s", "rating_col": "r", "timestamp_col": "t", "sep": "tab",
      "rating_range": [0.5, 5.0], "name": "shop"}),
    ("data info", ["d"], {"path": "d"}),
    ("train", ["c.yaml"],
     {"config": "c.yaml", "run_dir": None, "overwrite": False, "set": [], "sweep": []}),
    ("train", ["c.yaml", "--run-dir", "r", "--overwrite", "--set", "train.epochs=3",
               "--sweep", "train.learning_rate=0.005,0.02", "--sweep", "model.l2_latent=0.01"],
     {"config": "c.yaml", "run_dir": "r", "overwrite": True, "set": ["train.epochs=3"],
      "sweep": ["train.learning_rate=0.005,0.02", "model.l2_latent=0.01"]}),
    ("evaluate", ["r"], {"run_dir": "r", "out": None}),
    ("evaluate", ["r", "--out", "m.json"], {"run_dir": "r", "out": "m.json"}),
    ("table", ["t.yaml"],
     {"config": "t.yaml", "methods": None, "overwrite": False, "set": [], "sweep": []}),
    ("table", ["t.yaml", "--methods", "BPR-MF", "VBPR", "--overwrite", "--set", "a=1",
               "--sweep", "train.learning_rate=0.005,0.02"],
     {"config": "t.yaml", "methods": ["BPR-MF", "VBPR"], "overwrite": True, "set": ["a=1"],
      "sweep": ["train.learning_rate=0.005,0.02"]}),
    ("export", ["r"],
     {"run_dir": "r", "base": "exports", "name": None, "version": None, "label": None,
      "index": "brute_force", "n_partitions": None, "n_probe": None, "rerank": None,
      "quantization": None, "target_recall": None, "min_recall": None}),
    ("export", ["r", "--base", "b", "--name", "shop", "--version", "3", "--label", "stable",
                "--index", "partitioned", "--n-partitions", "16", "--n-probe", "4",
                "--rerank", "50", "--quantization", "int8", "--min-recall", "0.9"],
     {"run_dir": "r", "base": "b", "name": "shop", "version": 3, "label": "stable",
      "index": "partitioned", "n_partitions": 16, "n_probe": 4, "rerank": 50,
      "quantization": "int8", "target_recall": None, "min_recall": 0.9}),
    ("check-ops", ["m"], {"saved_model": "m", "list": False, "gpu": False}),
    ("check-ops", ["m", "--list", "--gpu"], {"saved_model": "m", "list": True, "gpu": True}),
    ("visualize", ["r", "--user", "u1"],
     {"run_dir": "r", "users": ["u1"], "items": [], "method": "gradcam++", "out": None,
      "sanity": False, "category": None, "n": None, "eta": None, "seed": 0}),
    ("visualize", ["r", "--user", "u1", "--user", "u2", "--items", "i1", "i2", "--method",
                   "saliency", "--out", "o", "--sanity"],
     {"run_dir": "r", "users": ["u1", "u2"], "items": ["i1", "i2"], "method": "saliency",
      "out": "o", "sanity": True, "category": None, "n": None, "eta": None, "seed": 0}),
    ("visualize", ["r", "--user", "u1", "--category", "shoes", "--n", "4", "--eta", "0.5",
                   "--seed", "3"],
     {"run_dir": "r", "users": ["u1"], "items": [], "method": "gradcam++", "out": None,
      "sanity": False, "category": "shoes", "n": 4, "eta": 0.5, "seed": 3}),
    ("report", ["d"], {"directory": "d", "out": None}),
    ("report", ["d", "--out", "r.html"], {"directory": "d", "out": "r.html"}),
    ("design", ["r", "--user", "u1", "--category", "shoes"],
     {"run_dir": "r", "user": "u1", "category": "shoes", "n": None, "eta": None, "seed": 0,
      "from_item": None, "out": None}),
    ("design", ["r", "--user", "u1", "--n", "3", "--eta", "0.5", "--seed", "7", "--from-item",
                "i9", "--out", "g.png"],
     {"run_dir": "r", "user": "u1", "category": None, "n": 3, "eta": 0.5, "seed": 7,
      "from_item": "i9", "out": "g.png"}),
    ("newcomers", ["a.yaml"], {"configs": ["a.yaml"], "held_out": 40,
                               "votes": [0, 5, 10, 20, 40], "seed": 0, "out": "runs/newcomers",
                               "set": []}),
    ("newcomers", ["a.yaml", "b.yaml", "--held-out", "9", "--votes", "0", "3", "--seed", "2",
                   "--out", "o", "--set", "data.seed=1"],
     {"configs": ["a.yaml", "b.yaml"], "held_out": 9, "votes": [0, 3], "seed": 2, "out": "o",
      "set": ["data.seed=1"]}),
    ("demo", [], {"workdir": "runs/demo", "config": None, "set": []}),
    ("demo", ["--workdir", "w", "--config", "d.yaml", "--set", "train.epochs=1"],
     {"workdir": "w", "config": "d.yaml", "set": ["train.epochs=1"]}),
]


def _parsed_commands(commands=cli.COMMANDS, prefix=""):
    """Every command the parser itself handles (not serve / query), by its full name."""
    for command in commands:
        if command.actions:
            yield from _parsed_commands(command.actions, f"{prefix}{command.name} ")
        elif command.passthrough is None:
            yield f"{prefix}{command.name}", command


def test_every_parsed_subcommand_has_a_parse_case():
    assert {name for name, _ in _parsed_commands()} == {name for name, _, _ in PARSES}


@pytest.mark.parametrize("name, argv, expected", PARSES,
                         ids=[f"{name}-{len(argv)}" for name, argv, _ in PARSES])
def test_every_option_parses(name, argv, expected):
    args = vars(build_parser().parse_args(name.split() + argv))
    command = dict(_parsed_commands())[name]
    assert args.pop("run") is command.run
    assert args.pop("command") == name.split()[0]
    if name.startswith("data "):
        assert args.pop("data_command") == name.split()[1]
    assert args == expected


def test_export_hands_index_options_to_the_index_by_name(monkeypatch, capsys):
    # The export itself is tested in tests/export; here only what the command line passes it.
    calls = []
    runs = types.ModuleType("tfrec_fashion_export.runs")
    runs.export_run = lambda *args, **kwargs: calls.append((args, kwargs)) or "b/shop/1"
    monkeypatch.setitem(sys.modules, "tfrec_fashion_export.runs", runs)
    assert main(["export", "r", "--base", "b", "--index", "partitioned", "--n-probe", "3",
                 "--quantization", "int8", "--min-recall", "0.9"]) == 0
    assert calls == [(("r", "b"), {"name": None, "version": None, "label": None,
                                   "index": "partitioned", "min_recall": 0.9,
                                   "index_params": {"n_probe": 3, "quantization": "int8"}})]
    assert "exported r to b/shop/1" in capsys.readouterr().out
    assert main(["export", "r", "--n-probe", "3", "--rerank", "9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--n-probe, --rerank apply to --index partitioned only" in err
    assert len(calls) == 1


def test_bad_config_gives_one_line_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: {name: two_tower, embeding_dim: 8}\n")
    result = run_cli("train", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "bad.yaml: unknown key 'model.embeding_dim' (did you mean 'embedding_dim'?)" \
        in result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_override_and_unknown_model_are_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("model: {name: two_tower}\n")
    assert main(["train", str(config), "--set", "train.epochs=many"]) == 2
    assert "'train.epochs' expects an integer, got str 'many'" in capsys.readouterr().err
    assert main(["train", str(config), "--set", "model.name=two_towr"]) == 2
    assert "unknown model 'model.name: two_towr' (did you mean 'two_tower'?)" \
        in capsys.readouterr().err


def test_unknown_fetch_name_and_evaluate_without_run(tmp_path, capsys):
    assert main(["data", "fetch", "imagenet"]) == 2
    assert "unknown offline data 'imagenet'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "holds no trained model" in capsys.readouterr().err


def test_parser_builds_without_importing_tensorflow():
    code = ("import sys; from tfrec_fashion.cli import build_parser; build_parser(); "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", "--help must not pay TensorFlow's import time"
