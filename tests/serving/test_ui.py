"""The browse page over HTTP, as the page and a user's browser use it: a tiny DVBPR run with item
images and attention maps and a tiny pair-compatibility run, exported and served; the page and
its files are served, the API lists the served versions and what lies beside them, the
thumbnails are byte for byte the sheet the run wrote (each cell the dataset's image of the item
in the catalogue's order), unknown names are JSON 404s naming them, paths leaving the page's
folders are refused, and only GET is answered. A run exported without images or maps gets the
catalogue only."""

import base64
import configparser
import fnmatch
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tfrec_fashion.training.serving_parts import load_parts
from tfrec_fashion.training.thumbnails import LAYOUT_FILE, SHEET_FILE, thumbnail_sheet
from tfrec_fashion_export.runs import export_run
from tfrec_fashion_export.writer import export_parts
from tfrec_fashion_serving import contract
from tfrec_fashion_serving.server import start_server
from tfrec_fashion_serving.ui import STATIC_DIRECTORY, page_url

from tests.serving.browse_runs import MAPPED_USERS, dvbpr_export, pairs_export

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"dvbpr": TrainResult, "pairs": TrainResult, "base": the export base of both}."""
    base = tmp_path_factory.mktemp("base")
    return {"dvbpr": dvbpr_export(tmp_path_factory.mktemp("dvbpr"), base),
            "pairs": pairs_export(tmp_path_factory.mktemp("pairs"), base), "base": base}


@pytest.fixture(scope="module")
def server(runs):
    server = start_server(str(runs["base"] / "models.config"), port=0, rest_port=0,
                          startup_timeout=60)
    yield server
    server.stop(grace=0)


def fetch(server, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    """(status, content type, body) of a request sent with its path exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        connection.request(method, path, body=b"{}" if method == "POST" else None)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type"), answer.read()
    finally:
        connection.close()


def fetch_json(server, path: str, status: int = 200):
    got, content_type, body = fetch(server, path)
    assert (got, content_type) == (status, "application/json"), body[:300]
    return json.loads(body)


def test_the_run_writes_every_items_thumbnail_in_the_serving_order(runs):
    result = runs["dvbpr"]
    serving = result.run_dir / "serving"
    layout = json.loads((serving / LAYOUT_FILE).read_text())
    items = result.dataset.items
    assert layout == {"cell_height": 32, "cell_width": 32, "columns": 8, "count": len(items)}
    sheet = np.asarray(Image.open(serving / SHEET_FILE).convert("RGB"))
    row = {item: index for index, item in enumerate(items.ids)}
    for index, item in enumerate(load_parts(result.run_dir).item_ids):
        line, column = divmod(index, layout["columns"])
        cell = sheet[32 * line:32 * (line + 1), 32 * column:32 * (column + 1)]
        np.testing.assert_array_equal(cell, items.images[row[item]], err_msg=item)


def test_a_sheet_scales_large_images_down_and_names_bad_input():
    sheet, layout = thumbnail_sheet(np.zeros((5, 64, 48, 3), np.uint8))
    assert layout == {"cell_height": 32, "cell_width": 24, "columns": 3, "count": 5}
    assert sheet.shape == (64, 72, 3)
    with pytest.raises(ValueError, match=r"uint8 \[N, H, W, 3\].*float32 \[2, 8, 8, 3\]"):
        thumbnail_sheet(np.zeros((2, 8, 8, 3), np.float32))


def test_the_page_and_its_files_are_served(server):
    status, content_type, body = fetch(server, "/ui/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert b'<script src="app.js"></script>' in body and b"http" not in body  # no CDN
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, content_type, body = fetch(server, f"/ui/{name}")
        assert (status, content_type) == (200, f"{kind}; charset=utf-8")
        assert body == (STATIC_DIRECTORY / name).read_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    connection.request("GET", "/ui")
    answer = connection.getresponse()
    assert (answer.status, answer.getheader("Location")) == (301, "/ui/")
    connection.close()


def test_the_models_api_lists_each_served_version_and_what_lies_beside_it(server):
    models = {model["name"]: model for model in fetch_json(server, "/ui/api/models")["models"]}
    assert sorted(models) == ["dvbpr", "pairs"]
    dvbpr, pairs = models["dvbpr"], models["pairs"]
    assert dvbpr["version"] == 1 and dvbpr["description"]["head"] == "retrieval"
    assert {"recommend", "user_query"} <= set(dvbpr["signatures"])
    assert dvbpr["thumbnails"] == {"cell_height": 32, "cell_width": 32, "columns": 8,
                                   "count": 60}
    assert dvbpr["attention"] == ["gradcam", "gradcampp"] and dvbpr["catalogue"]
    assert pairs["description"]["head"] == "compatibility" and pairs["attention"] == []
    assert pairs["thumbnails"]["cell_height"] == 16  # the planted world's 16-pixel images


def test_the_catalogue_and_thumbnails_are_the_served_versions(server, runs):
    for name in ("dvbpr", "pairs"):
        parts = load_parts(runs[name].run_dir)
        catalogue = fetch_json(server, f"/ui/api/models/{name}/catalogue")
        assert catalogue["head"] == parts.HEAD
        assert catalogue["user_ids"] == parts.user_ids.tolist()
        assert catalogue["item_ids"] == parts.item_ids.tolist()
        assert catalogue["item_categories"] == parts.item_categories.tolist()
        status, content_type, body = fetch(server, f"/ui/api/models/{name}/thumbnails.png")
        assert (status, content_type) == (200, "image/png")
        assert body == (runs[name].run_dir / "serving" / SHEET_FILE).read_bytes()
    assert catalogue["complements"] == parts.complements  # the compatibility head's


def test_attention_maps_are_served_per_customer(server, runs):
    maps = fetch_json(server, "/ui/api/models/dvbpr/attention/gradcampp")
    with np.load(runs["dvbpr"].run_dir / "attention" / "attention_gradcampp.npz") as stored:
        assert maps["user_ids"] == MAPPED_USERS == stored["user_ids"].tolist()
        assert maps["item_ids"] == stored["item_ids"].tolist()
        np.testing.assert_allclose(maps["scores"], stored["scores"], atol=1e-5)
        assert (maps["height"], maps["width"]) == (32, 32)
        first = np.frombuffer(base64.b64decode(maps["maps"][1][2]), np.uint8).reshape(32, 32)
        np.testing.assert_allclose(first / 255, stored["maps"][1, 2], atol=0.5 / 255 + 1e-6)
        image = np.frombuffer(base64.b64decode(maps["images"][0]), np.uint8)
        np.testing.assert_allclose(image.reshape(32, 32, 3) / 255, stored["images"][0],
                                   atol=0.5 / 255 + 1e-6)
    status, content_type, body = fetch(server, "/ui/api/models/dvbpr/attention/gradcampp.png")
    assert (status, content_type) == (200, "image/png")
    assert body == (runs["dvbpr"].run_dir / "attention" / "attention_gradcampp.png").read_bytes()


@pytest.mark.parametrize("path, named", [
    ("/ui/api/models/nope/catalogue", "nope"),
    ("/ui/api/models/dvbpr/prices", "prices"),
    ("/ui/api/models/dvbpr/attention/smoothgrad", "smoothgrad"),
    ("/ui/api/models/pairs/attention/gradcampp", "attention 'gradcampp'"),
    ("/ui/api/recipes", "recipes"),
    ("/ui/missing.js", "missing.js"),
])
def test_unknown_models_and_files_are_json_404s_naming_them(server, path, named):
    assert named in fetch_json(server, path, status=404)["error"]


@pytest.mark.parametrize("path", [
    "/ui/../v1/models/dvbpr",
    "/ui/%2e%2e/%2e%2e/etc/passwd",
    "/ui/api/models/dvbpr/..%2F1%2Fsaved_model.pb",
    "/ui/api/models/..%2Fdvbpr/catalogue",
    "/ui/.hidden",
])
def test_paths_leaving_the_page_are_refused(server, path):
    assert "refused" in fetch_json(server, path, status=400)["error"]


def test_only_get_is_answered(server):
    status, content_type, body = fetch(server, "/ui/api/models", method="POST")
    assert (status, content_type) == (405, "application/json")
    assert "GET only" in json.loads(body)["error"]


def test_an_export_without_images_or_maps_carries_the_catalogue_only(runs, tmp_path):
    parts = load_parts(runs["dvbpr"].run_dir)  # no run directory: neither thumbnails nor maps
    version = export_parts(parts, tmp_path / "base", "plain")
    extra = sorted(path.name for path in (version / contract.ASSETS_EXTRA).iterdir())
    assert extra == ["catalogue.json", "tf_serving_warmup_requests", "tfrec_fashion.json"]
    run_dir = tmp_path / "run"  # a run whose dataset had no images, never visualised
    shutil.copytree(runs["dvbpr"].run_dir, run_dir, ignore=shutil.ignore_patterns(
        "attention", SHEET_FILE, LAYOUT_FILE))
    version = export_run(run_dir, tmp_path / "base", "plain")
    assert sorted(path.name for path in (version / contract.ASSETS_EXTRA).iterdir()) == extra
    server = start_server(str(tmp_path / "base" / "models.config"), port=0, rest_port=0,
                          startup_timeout=60)
    try:
        (model,) = fetch_json(server, "/ui/api/models")["models"]
        assert (model["thumbnails"], model["attention"]) == (None, [])
        assert "thumbnails.png" in fetch_json(server, "/ui/api/models/plain/thumbnails.png",
                                              status=404)["error"]
    finally:
        server.stop(grace=0)


def test_the_sanity_line_of_visualize_travels_with_its_maps(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["dvbpr"].run_dir, run_dir)
    line = "model randomisation: rank correlation 0.12 (< 0.5)"
    (run_dir / "attention" / "sanity_gradcampp.json").write_text(json.dumps({"line": line}))
    version = export_run(run_dir, tmp_path / "base", "dvbpr")
    maps = version / contract.ATTENTION_DIRECTORY
    assert json.loads((maps / "gradcampp.json").read_text())["sanity"] == line
    assert "sanity" not in json.loads((maps / "gradcam.json").read_text())


def test_a_version_exported_before_the_page_is_listed_without_a_catalogue(shared_server):
    (toy,) = fetch_json(shared_server, "/ui/api/models")["models"]
    assert (toy["name"], toy["version"], toy["catalogue"]) == ("toy", 2, False)
    assert (toy["thumbnails"], toy["attention"], toy["description"]) == (None, [], {})
    assert "catalogue" in fetch_json(shared_server, "/ui/api/models/toy/catalogue",
                                     status=404)["error"]


def test_the_page_files_ship_with_the_package():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = config["options.package_data"]["tfrec_fashion_serving"].split(", ")
    for path in STATIC_DIRECTORY.iterdir():
        name = path.relative_to(ROOT / "serving").as_posix()
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_the_page_url_names_this_machine_for_a_wildcard_host():
    assert page_url("0.0.0.0", 8501) == "http://localhost:8501/ui/"
    assert page_url("127.0.0.1", 9000) == "http://127.0.0.1:9000/ui/"
    assert page_url("::1", 9000) == "http://[::1]:9000/ui/"


def test_serve_prints_the_page_url(runs):
    with socket.socket() as probe:  # a free port for REST (`--rest_api_port 0` means no REST)
        probe.bind(("127.0.0.1", 0))
        rest_port = probe.getsockname()[1]
    command = [sys.executable, "-c", "import sys; from tfrec_fashion.cli import main; "
               "sys.exit(main(sys.argv[1:]))", "serve", "--export_base", str(runs["base"]),
               "--port", "0", "--rest_api_port", str(rest_port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        lines = iter(process.stdout.readline, "")  # ends if the server exits
        url = next((line.split(": ", 1)[1].strip() for line in lines
                    if line.startswith("browse page: ")), None)
        assert url == f"http://127.0.0.1:{rest_port}/ui/"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert b"<title>tfrec_fashion" in answer.read()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
