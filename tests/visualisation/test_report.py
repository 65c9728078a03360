"""The run report as a user relies on it: ``tfrec-fashion report`` of a tiny trained run and of a
demo-like workdir around it writes one HTML file that carries the run's real numbers in its
protocol's table, embeds every figure as a PNG that decodes (training curves drawn from the log
when the run has none), needs no network, and renders in headless Chromium: headings, every
image, a working table of contents. A directory that is neither kind fails in one line.

``TFREC_FASHION_WRITE_SCREENSHOTS=1`` saves the browser's screenshot as docs/images/report.png
(of ``TFREC_FASHION_REPORT_DIR``, e.g. a finished ``runs/demo``, when that is set)."""

import base64
import html
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser import assert_not_blank, chromium_page
from tfrec_fashion.cli import main
from tfrec_fashion.config import from_dict
from tfrec_fashion.demo import _summary_table
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.visualisation.item_grid import plot_item_grid
from tfrec_fashion.visualisation.report import find_runs, write_report

TINY = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120,
        "mean_interactions_per_user": 12.0, "image_size": 32}
TRAIN = {"epochs": 3, "batch_size": 64, "steps_per_epoch": 8, "learning_rate": 0.02,
         "verbose": 0}
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "report.png"
SANITY_LINE = "gradcam: parameter randomisation rho 0.12 (< 0.5, passes)"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny finished BPR-MF run, as `tfrec-fashion train` leaves it (no PNG of its own)."""
    root = tmp_path_factory.mktemp("runs")
    config = from_dict(RunConfig, {"model": {"name": "bpr_mf", "latent_dim": 8}, "data": TINY,
                                   "train": TRAIN, "seed": 0, "run_dir": str(root / "bpr_mf")})
    return train(config).run_dir


@pytest.fixture(scope="module")
def workdir(run_dir, tmp_path_factory):
    """The demo's layout around copies of that run: two run folders (one with another latent
    size, and attention maps with their sanity line), summary.md / .json, the items grid of a
    run and the served recommendations."""
    work = tmp_path_factory.mktemp("demo")
    results = {}
    for name, latent in (("bpr_mf_tiny", 8), ("bpr_mf_wide", 16)):
        shutil.copytree(run_dir, work / name)
        config = (work / name / "config.yaml").read_text()
        (work / name / "config.yaml").write_text(config.replace("latent_dim: 8",
                                                                f"latent_dim: {latent}"))
        results[name] = json.loads((work / name / "metrics.json").read_text())
    (work / "summary.md").write_text(_summary_table(results) + "\n")
    (work / "summary.json").write_text(json.dumps(results))
    images = np.zeros((4, 16, 16, 3), np.uint8)
    images[:, 4:12, 4:12] = [200, 30, 30]
    plot_item_grid(images, ["red top"] * 4, work / "bpr_mf_tiny_items.png", columns=4)
    plot_item_grid(images, ["served"] * 4, work / "recommendations.png", columns=4)
    plot_item_grid(images, ["map"] * 4, work / "bpr_mf_wide" / "attention" /
                   "attention_gradcampp.png", columns=4)
    (work / "bpr_mf_wide" / "attention" / "sanity_gradcampp.json").write_text(
        json.dumps({"line": SANITY_LINE}))
    return work


def _images(page: str) -> list[bytes]:
    """The decoded PNG bytes of every <img> of the page (all must be data: URIs)."""
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), sources
    return [base64.b64decode(s.removeprefix("data:image/png;base64,"), validate=True)
            for s in sources]


def _assert_self_contained(page: str) -> None:
    assert not re.search(r"https?://|<script|<link|@import|url\(", page), \
        "the report must need nothing outside the file"
    for png in _images(page):
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_report_of_a_run_dir_has_its_numbers_and_draws_its_curves(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    page = path.read_text()
    _assert_self_contained(page)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # The implicit protocol's table: the model beside RAND / PopRank and the planted oracle.
    table = page[page.index("<h3>Held-out metrics</h3>"):page.index("</table>")]
    for header in ("RAND", "PopRank", "bpr_mf", "bpr_mf vs. PopRank", "Oracle", "All Items",
                   "Cold Items"):
        assert f">{header}<" in table or f"<strong>{header}" in table, header
    for key in ("test_auc", "cold_test_auc", "oracle_test_auc", "popularity_test_auc"):
        assert f"{metrics[key]:.4f}" in table, key
    assert f"<td>best_epoch</td><td class=\"number\">{metrics['best_epoch']}</td>" in page
    # No PNG in the run: the curves are drawn from logs/training.csv, and nothing is left behind.
    assert len(_images(page)) == 1 and "<h3>Training curves</h3>" in page
    assert not list(run_dir.glob("*.png"))
    assert "latent_dim: 8" in page  # the run's config.yaml
    assert 'href="#summary"' not in page  # a single run has no demo summary


def test_report_of_the_demo_workdir_has_a_section_per_run_and_every_figure(workdir, tmp_path):
    assert [p.name for p in find_runs(workdir)] == ["bpr_mf_tiny", "bpr_mf_wide"]
    out = tmp_path / "elsewhere" / "report.html"
    assert main(["report", str(workdir), "--out", str(out)]) == 0
    page = out.read_text()
    _assert_self_contained(page)
    # The table of contents points at sections that exist.
    targets = re.findall(r'<nav>.*?</nav>', page, re.S)[0]
    anchors = re.findall(r'href="#([^"]+)"', targets)
    assert {"summary", "run-bpr-mf-tiny", "run-bpr-mf-wide"} <= set(anchors)
    assert all(page.count(f'id="{anchor}"') == 1 for anchor in anchors)
    # The demo's summary table, with the run's real numbers.
    metrics = json.loads((workdir / "bpr_mf_tiny" / "metrics.json").read_text())
    summary = page[page.index('<section id="summary">'):page.index("</section>")]
    assert "<th>oracle_test_auc</th>" in summary and f"{metrics['test_auc']:.4f}" in summary
    assert "<td>model.latent_dim</td><td class=\"number\">8</td><td class=\"number\">16</td>" \
        in summary  # the one config difference
    # Figures: recommendations (summary), curves twice, items of one run, attention of the other.
    titles = re.findall(r"<figure id=\"([^\"]+)\"><h3>", page)
    assert titles == ["served-recommendations", "run-bpr-mf-tiny-training-curves",
                      "run-bpr-mf-tiny-items", "run-bpr-mf-wide-training-curves",
                      "run-bpr-mf-wide-attention-maps-gradcampp"]
    assert len(_images(page)) == 5
    assert "Attention maps (gradcam++, tf-keras-vis)" in page and html.escape(SANITY_LINE) in page


@pytest.mark.parametrize("layout", ["missing", "empty", "unfinished", "a file"])
def test_a_directory_that_is_no_run_is_refused_in_one_line(layout, tmp_path, capsys):
    directory = tmp_path / "runs"
    if layout == "empty":
        directory.mkdir()
    elif layout == "unfinished":
        directory.mkdir()
        (directory / "config.yaml").write_text("model: {name: bpr_mf}\n")
    elif layout == "a file":
        directory.write_text("not a run")
    assert main(["report", str(directory)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(directory) in error, error
    expected = {"missing": "is not a directory", "a file": "is not a directory",
                "empty": "is neither a run directory (no metrics.json) nor the demo's workdir",
                "unfinished": "holds an unfinished run (no metrics.json)"}[layout]
    assert expected in error
    assert not (tmp_path / "runs" / "report.html").exists()


def test_the_report_renders_in_a_browser(workdir):
    directory = Path(os.environ.get("TFREC_FASHION_REPORT_DIR") or workdir)
    path = write_report(directory)
    runs = [p.name for p in find_runs(directory)]
    with chromium_page() as page:
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        assert page.locator("h1").inner_text().startswith("Run report")
        assert page.locator("section.run > h2").all_inner_texts() == runs
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
        assert widths and all(width > 0 for width in widths), widths
        screenshot = page.screenshot()
        assert_not_blank(screenshot)
        # The table of contents takes the reader to the last run's section.
        page.click(f"nav a[href='#run-{runs[-1].replace('_', '-')}']")
        assert page.evaluate("location.hash") == f"#run-{runs[-1].replace('_', '-')}"
        top = page.eval_on_selector(f"#run-{runs[-1].replace('_', '-')}",
                                    "section => section.getBoundingClientRect().top")
        assert 0 <= top < 900
        assert_not_blank(page.screenshot())
    if os.environ.get("TFREC_FASHION_WRITE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(screenshot)


def test_a_solver_run_gets_its_convergence_and_rating_table(tmp_path):
    config = from_dict(RunConfig, {"model": {"name": "partial_dual", "C": 5.0,
                                             "centering": "global"},
                                   "data": TINY, "train": {"verbose": 0}, "seed": 0,
                                   "run_dir": str(tmp_path / "partial_dual")})
    run = train(config).run_dir
    page = write_report(run).read_text()
    _assert_self_contained(page)
    metrics = json.loads((run / "metrics.json").read_text())
    # The rating protocol's table: RMSE beside the rating baselines, the solver's rank noted.
    assert "<th>RMSE</th>" in page and "Global mean" in page
    assert f"{metrics['test_rmse']:.4f}" in page and f"rank found: {metrics['solver_rank']}" in page
    assert "Solver convergence: the relative duality gap" in page and len(_images(page)) == 1
