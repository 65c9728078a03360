"""The browse page in headless Chromium (``tests/browser.py``), clicked through as a person
would: a tiny DVBPR run with item images and attention maps and a tiny pair-compatibility run,
exported and served by ``start_server``; picking a customer shows their history and the served
top-k with drawn thumbnails and their attention maps, the unknown customer is flagged cold
start, a compatibility model completes a picked item, and the URL hash deep-links the state.
``TFREC_FASHION_WRITE_SCREENSHOTS=1`` also writes the screenshot to ``docs/images/ui.png``."""

import json
import os
import urllib.request
from pathlib import Path

import pytest
from tfrec_fashion_serving.server import start_server

from tests.browser import assert_not_blank, chromium_page
from tests.serving.browse_runs import MAPPED_USERS, dvbpr_export, pairs_export

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "ui.png"
# Each drawn thumbnail canvas shows a picture: several distinct colours, no transparent pixel.
DRAWN = """canvases => canvases.map(canvas => {
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let opaque = true;
  for (let i = 0; i < pixels.length; i += 4) {
    colours.add(pixels[i] * 65536 + pixels[i + 1] * 256 + pixels[i + 2]);
    opaque = opaque && pixels[i + 3] === 255;
  }
  return opaque && colours.size >= 3;
})"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """{"url": the page's URL, "rest": REST's root, "dvbpr" / "pairs": TrainResult}."""
    base = tmp_path_factory.mktemp("base")
    runs = {"dvbpr": dvbpr_export(tmp_path_factory.mktemp("dvbpr"), base),
            "pairs": pairs_export(tmp_path_factory.mktemp("pairs"), base)}
    server = start_server(str(base / "models.config"), port=0, rest_port=0, startup_timeout=60)
    rest = f"http://127.0.0.1:{server.rest_port}"
    yield {"url": f"{rest}/ui/", "rest": rest, **runs}
    server.stop(grace=0)


def predict(served, model: str, signature: str, instance: dict) -> dict:
    """What the REST API answers for one instance (the page must show exactly this)."""
    body = json.dumps({"signature_name": signature, "instances": [instance]}).encode()
    request = urllib.request.Request(f"{served['rest']}/v1/models/{model}:predict", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["predictions"][0]


def card_ids(page, container: str) -> list[str]:
    return page.eval_on_selector_all(f"#{container} .card", "cards => cards.map(card => "
                                     "card.dataset.item)")


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def test_a_customer_shows_history_recommendations_thumbnails_and_attention(served, tmp_path):
    user = MAPPED_USERS[1]
    with chromium_page() as page:
        open_page(page, served["url"])
        page.click(f"[data-user={user}]")
        page.wait_for_selector("#attention-items canvas")
        recommended = predict(served, "dvbpr", "recommend", {"user_id": user, "k": 10})
        assert card_ids(page, "recommendation-items") == recommended["item_ids"]
        scores = page.eval_on_selector_all("#recommendation-items .score",
                                           "nodes => nodes.map(node => node.textContent)")
        assert scores == [f"score {score:.3f}" for score in recommended["scores"]]
        seen = predict(served, "dvbpr", "user_query", {"user_id": user})["seen_item_ids"]
        assert card_ids(page, "history-items") == [item for item in seen if item] != []
        sheet = page.evaluate("new Promise(done => { const image = new Image(); "
                              "image.onload = () => done(image.naturalWidth); "
                              "image.src = 'api/models/dvbpr/thumbnails.png'; })")
        assert sheet == 8 * 32
        drawn = page.eval_on_selector_all("#recommendation-items canvas, #history-items canvas",
                                          DRAWN)
        assert len(drawn) == 10 + len(card_ids(page, "history-items")) and all(drawn)
        assert page.is_visible("#attention") and page.is_visible('#methods >> text="gradcam"')
        heatmaps = page.eval_on_selector_all("#attention-items canvas", DRAWN)
        assert len(heatmaps) == 6 and all(heatmaps)
        assert page.locator("#attention-items .score").count() == 6
        assert page.url.endswith("#model=dvbpr&user=u07&method=gradcam")
        png = page.screenshot(path=tmp_path / "ui.png", full_page=True)
        page.click("#methods >> text=gradcam++")  # the other method's maps of the same items
        page.wait_for_function("document.getElementById('attention-grid').href"
                               ".endsWith('attention/gradcampp.png')")
        assert page.is_visible("#methods button.selected >> text=gradcam++")
        assert page.url.endswith("method=gradcampp")
        assert all(page.eval_on_selector_all("#attention-items canvas", DRAWN))
    assert_not_blank(png)
    if os.environ.get("TFREC_FASHION_WRITE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(png)


def test_the_unknown_customer_is_served_the_cold_start(served):
    with chromium_page() as page:
        open_page(page, served["url"])
        page.click("#cold-start")
        page.wait_for_selector("#recommendation-items .card")
        assert page.is_visible("#customer-badges >> text=cold start")
        recommended = predict(served, "dvbpr", "recommend", {"user_id": "__unknown_user__"})
        assert card_ids(page, "recommendation-items") == recommended["item_ids"]
        assert page.is_visible("#history-items >> text=An unknown customer has no history.")
        page.wait_for_selector("#attention-note >> text=Maps were written for other customers")


def test_a_deep_link_opens_a_compatibility_model_and_completes_a_picked_item(served):
    catalogue = json.loads(urllib.request.urlopen(f"{served['url']}api/models/pairs/catalogue",
                                                  timeout=30).read())
    with chromium_page() as page:
        open_page(page, f"{served['url']}#model=pairs&user=u03")
        page.wait_for_selector("#pair-items .card")
        assert page.input_value("#model") == "pairs" and page.is_visible("#pairs")
        assert not page.is_visible("#recommendations")
        anchors = card_ids(page, "anchor-items")
        anchor = anchors[3]
        page.click(f"#anchor-items [data-item={anchor}]")
        page.wait_for_selector(f"#anchor-name >> text={anchor}")
        expected = predict(served, "pairs", "complete_pair",
                           {"user_id": "u03", "item_id": anchor, "k": 10})["item_ids"]
        expected = [item for item in expected if item]
        page.wait_for_function("expected => JSON.stringify([...document.querySelectorAll("
                               "'#pair-items .card')].map(card => card.dataset.item)) === "
                               "JSON.stringify(expected)", arg=expected)
        partners = set(catalogue["complements"][catalogue["item_categories"][
            catalogue["item_ids"].index(anchor)]])
        categories = page.eval_on_selector_all("#pair-items .category",
                                               "nodes => nodes.map(node => node.textContent)")
        assert set(categories) <= partners
        assert all(page.eval_on_selector_all("#pair-items canvas", DRAWN))
        assert f"item={anchor}" in page.url
