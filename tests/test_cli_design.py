"""``tfrec-fashion design`` as a user runs it on a run directory's serving parts (a toy GAN and
Phi: the command is generic): the grid PNG and its printed scores are the exported ``design``
signature's for the same seed, with the discriminator's realism beside them; an unknown
customer is the cold start and says so; ``--from-item`` tailors the item (its inversion first,
then the ascent raising the customer's score); bad input is one line naming it."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfrec_fashion.cli import main
from tfrec_fashion.training.serving_parts import save_parts
from tfrec_fashion_export.design import DesignModule
from tfrec_fashion_serving import contract
from tests.export.toy_gan import CATEGORIES, SETTINGS, toy_parts


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    gan, parts = toy_parts()
    run_dir = tmp_path_factory.mktemp("design_run")
    save_parts(parts, run_dir / "serving")
    return run_dir, gan, parts


def printed_scores(out: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(title, preference [n], realism [n]) from the command's caption lines."""
    lines = out.splitlines()
    captions = [line.split() for line in lines if " pref " in line and "item " not in line]
    return (lines[0], np.array([float(c[c.index("pref") + 1]) for c in captions]),
            np.array([float(c[c.index("D") + 1]) for c in captions]))


def test_designs_are_the_served_signatures_with_their_scores(run, tmp_path, capsys):
    run_dir, gan, parts = run
    out = tmp_path / "grid.png"
    assert main(["design", str(run_dir), "--user", "u1", "--category", "shoes", "--n", "4",
                 "--seed", "3", "--out", str(out)]) == 0
    title, preference, realism = printed_scores(capsys.readouterr().out)
    assert title == f"designs for u1, shoes, eta {SETTINGS.eta:g}, seed 3"  # the run's eta
    request = contract.design_inputs(["u1"], "shoes", 4, 3, SETTINGS.eta)
    module = DesignModule(parts)
    served = module.design(**{k: tf.constant(v) for k, v in request.items()})
    np.testing.assert_allclose(preference, served["scores"].numpy()[0], atol=0.006)
    images = served["images"].numpy()[0]
    np.testing.assert_allclose(realism, gan.discriminate(images, np.full(4, 1, np.int32)),
                               atol=0.006)
    grid = np.asarray(Image.open(out))
    assert grid.ndim == 3 and grid.shape[1] > grid.shape[0]  # one row of four
    assert grid[..., :3].std() > 10  # images drawn, not a blank page


def test_n_defaults_to_eight_or_the_runs_restarts(tmp_path, capsys):
    from tfrec_fashion.training.serving_parts import DesignSettings

    _, parts = toy_parts(DesignSettings(restarts=4, steps=2, learning_rate=0.1))
    save_parts(parts, tmp_path / "serving")
    assert main(["design", str(tmp_path), "--user", "u0", "--category", "bag", "--out",
                 str(tmp_path / "g.png")]) == 0
    assert len(printed_scores(capsys.readouterr().out)[1]) == 4


def test_an_unknown_customer_is_the_cold_start_and_the_grid_says_so(run, tmp_path, capsys):
    run_dir, _, parts = run
    assert main(["design", str(run_dir), "--user", "nobody", "--category", "top", "--n", "2",
                 "--eta", "0", "--out", str(tmp_path / "cold.png")]) == 0
    title, preference, _ = printed_scores(capsys.readouterr().out)
    assert "nobody (unknown: cold start, the mean customer's taste)" in title
    request = contract.design_inputs(["nobody"], "top", 2, 0, 0.0)
    module = DesignModule(parts)
    served = module.design(**{k: tf.constant(v) for k, v in request.items()})
    assert served["cold_start"].numpy()[0]
    np.testing.assert_allclose(preference, served["scores"].numpy()[0], atol=0.006)


def test_from_item_tailors_the_prototype_towards_the_customer(run, tmp_path, capsys):
    run_dir, _, parts = run
    out = tmp_path / "tailored.png"
    assert main(["design", str(run_dir), "--user", "u2", "--from-item", "i4", "--n", "3",
                 "--eta", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "tailored from i4 for u2, top, eta 0, seed 0"  # i4 is a top
    assert lines[1].split()[:2] == ["item", "i4"]  # the prototype first
    labels = [line.split()[0] for line in lines[2:6]]
    assert labels == ["inverted", "step", "step", "step"]
    _, preference, _ = printed_scores(printed)
    assert preference[-1] > preference[0] + 0.1  # the ascent raised the customer's score
    assert out.is_file()


@pytest.mark.parametrize("argv, message", [
    (["--user", "u1", "--category", "hats"], "unknown category 'hats'; the categories are "
     "bag, shoes, top"),
    (["--user", "u1", "--from-item", "nope"], "unknown item 'nope' (--from-item)"),
    (["--user", "u1", "--from-item", "i0", "--category", "top"], "item 'i0' is a 'bag', not "
     "'top'"),
    (["--user", "u1"], "name the category to design (--category)"),
    (["--user", "u1", "--category", "top", "--n", "0"], r"--n must be in [1, 8]"),
    (["--user", "u1", "--category", "top", "--n", "9"], r"--n must be in [1, 8]"),
    (["--user", "u1", "--category", "top", "--eta", "-1"], "--eta must be >= 0"),
], ids=["category", "item", "item-category", "no-category", "n-0", "n-9", "eta"])
def test_bad_input_is_one_line_naming_it(run, tmp_path, capsys, argv, message):
    run_dir, _, _ = run
    assert main(["design", str(run_dir), *argv, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_a_run_of_another_head_is_refused(tmp_path, capsys):
    from tfrec_fashion.training.serving_parts import RetrievalParts

    parts = RetrievalParts(["u0"], ["i0"], [CATEGORIES[0]], np.ones((1, 2)), np.ones((1, 2)))
    save_parts(parts, tmp_path / "serving")
    assert main(["design", str(tmp_path), "--user", "u0", "--category", "bag"]) == 2
    assert "serves the retrieval head; `design` needs a GAN design run" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_a_trained_design_gan_run_designs_exports_and_serves_the_same(tmp_path, capsys):
    """End to end on the harness: a tiny DVBPR run, the design GAN beside it, then `design`
    on the run directory and `export` of it, whose signature in a fresh process gives the
    scores the command printed."""
    from tfrec_fashion.config import from_dict
    from tfrec_fashion.training.harness import train
    from tfrec_fashion.training.run_config import RunConfig
    from tfrec_fashion.training.serving_parts import load_parts
    from tfrec_fashion_serving import testing
    from tests.training.test_design_gan_recipe import DVBPR, WORLD, gan_config

    train(from_dict(RunConfig, {
        "data": WORLD, "model": DVBPR, "run_dir": str(tmp_path / "dvbpr"),
        "train": {"epochs": 1, "batch_size": 32, "steps_per_epoch": 4, "learning_rate": 0.01,
                  "verbose": 0}}))
    run_dir = train(gan_config(tmp_path / "gan", tmp_path / "dvbpr")).run_dir
    parts = load_parts(run_dir)
    user, n = str(parts.user_ids[1]), parts.settings.restarts
    capsys.readouterr()
    assert main(["design", str(run_dir), "--user", user, "--category", "shoes", "--seed", "5",
                 "--out", str(tmp_path / "grid.png")]) == 0
    _, preference, _ = printed_scores(capsys.readouterr().out)
    assert len(preference) == n
    assert main(["export", str(run_dir), "--base", str(tmp_path / "exports")]) == 0
    request = contract.design_inputs([user], "shoes", n, 5, parts.settings.eta)
    answer = testing.answers_in_fresh_process(str(tmp_path / "exports" / "design_gan" / "1"),
                                              {"design": request})[0]["design"]
    np.testing.assert_allclose(answer["scores"][0], preference, atol=0.006)
    module = DesignModule(parts)  # what the command drew
    drawn = module.design(**{k: tf.constant(v) for k, v in request.items()})["images"].numpy()
    # A GAN trained for 6 steps draws near-grey images: they differ by ~1e-3, so compare finer.
    assert answer["images"].shape == (1, n, 32, 32, 3) and np.ptp(drawn) > 1e-4
    np.testing.assert_allclose(answer["images"], drawn, rtol=0, atol=2e-6)
