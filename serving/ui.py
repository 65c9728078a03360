"""The browse page on the REST port: ``GET /ui/`` and the small JSON API it reads.

The page (``serving/ui_page/``: HTML, JavaScript and CSS, no framework, nothing fetched from the
network) asks TF Serving's REST API (``POST /v1/models/NAME/versions/V:predict``) for
everything a model answers, and this module for what that API does not give: which models are
served and what lies beside the version each serves (``contract``'s browse files, written by
export)::

    GET /ui/                                       the page (index.html)
    GET /ui/FILE                                   its scripts and styles
    GET /ui/api/models                             {"models": [{"name", "version",
                                                    "description" (assets.extra/tfrec_fashion.json),
                                                    "catalogue": bool, "thumbnails": layout or
                                                    null, "attention": [method, ...]}, ...]}
                                                   (a model with no version loaded: {"name",
                                                    "error"})
    GET /ui/api/models/NAME/catalogue              user ids, item ids, item categories
    GET /ui/api/models/NAME/thumbnails.png         every item's image on one sheet
    GET /ui/api/models/NAME/attention/METHOD       customers' maps of items (JSON), and
    GET /ui/api/models/NAME/attention/METHOD.png   the grid ``visualize`` drew

Files are read from the version the server serves as the latest. An unknown model, file or
method is a JSON 404 naming it; a path with ``..``, ``.``-names or separators in a segment is
refused (400); only GET is answered (405 otherwise). Errors are :class:`~.errors.ServingError`,
answered by ``rest.py`` as every other REST error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.parse
from pathlib import Path

from . import contract
from .errors import ServingError, invalid_argument, not_found
from .model_manager import ModelManager

PREFIX = "/ui"
STATIC_DIRECTORY = Path(__file__).with_name("ui_page")  # the page's static files
INDEX_FILE = "index.html"
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".png": "image/png",
                  ".json": "application/json", ".svg": "image/svg+xml"}
_ASSETS = {"catalogue": contract.CATALOGUE_FILE, "thumbnails.png": contract.THUMBNAILS_FILE}
_METHOD = re.compile(r"^[A-Za-z0-9_+-]+(\.png)?$")


@dataclasses.dataclass(frozen=True)
class Response:
    """An answer that is not TF Serving's JSON: its body, type, status and extra headers."""

    body: bytes
    content_type: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


def handles(path: str) -> bool:
    """Whether a request path (without its query) is the page's."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def answer(manager: ModelManager, method: str, path: str) -> Response:
    """The page's answer to ``method path``; raises ServingError for a request it refuses."""
    if method != "GET":
        body = json.dumps({"error": f"{method} {path}: the browse page answers GET only"})
        return Response(body.encode("utf-8"), "application/json", 405, (("Allow", "GET"),))
    if path == PREFIX:  # relative links in the page resolve against /ui/
        return Response(b"", "text/plain", 301, (("Location", PREFIX + "/"),))
    segments = _segments(path[len(PREFIX) + 1:])
    if segments[:1] == ["api"]:
        return _api(manager, segments[1:])
    return _static(segments)


def _segments(rest: str) -> list[str]:
    """The path's segments, percent-decoded; refuses any that could leave the page's folders."""
    segments = [urllib.parse.unquote(segment) for segment in rest.split("/")] if rest else []
    for segment in segments:
        if segment.startswith(".") or "/" in segment or "\\" in segment or "\0" in segment:
            raise invalid_argument(f"refused path segment {segment!r} in /ui/{rest}: the page "
                                   "serves named files only")
    return segments


def _static(segments: list[str]) -> Response:
    name = "/".join(segments) or INDEX_FILE
    files = {path.name for path in STATIC_DIRECTORY.iterdir() if path.is_file()}
    if len(segments) > 1 or name not in files:
        raise not_found(f"no page file {name!r} under {PREFIX}/; files: {sorted(files)}")
    return _file(STATIC_DIRECTORY / name)


def _file(path: Path) -> Response:
    return Response(path.read_bytes(),
                    _CONTENT_TYPES.get(path.suffix, "application/octet-stream"))


def _json(value) -> Response:
    return Response(json.dumps(value).encode("utf-8"), "application/json")


def _api(manager: ModelManager, segments: list[str]) -> Response:
    if segments == ["models"]:
        return _json({"models": [_model_entry(manager, name) for name in manager.model_names()]})
    if len(segments) < 3 or segments[0] != "models":
        raise not_found(f"no browse API /ui/api/{'/'.join(segments)}; expected models, "
                        "models/NAME/catalogue, models/NAME/thumbnails.png or "
                        "models/NAME/attention/METHOD[.png]")
    name, what = segments[1], segments[2:]
    version_dir = Path(manager.servable(name).path)
    if len(what) == 1 and what[0] in _ASSETS:
        return _file(_asset(version_dir / _ASSETS[what[0]], name, what[0]))
    if len(what) == 2 and what[0] == "attention" and _METHOD.match(what[1]):
        return _file(_asset(version_dir / contract.ATTENTION_DIRECTORY /
                            (what[1] if what[1].endswith(".png") else what[1] + ".json"),
                            name, f"attention {what[1]!r} (methods: "
                                  f"{attention_methods(version_dir)})"))
    raise not_found(f"model {name!r} has no browse file {'/'.join(what)!r}; expected "
                    f"{sorted(_ASSETS)} or attention/METHOD[.png]")


def _asset(path: Path, model: str, what: str) -> Path:
    if not path.is_file():
        raise not_found(f"model {model!r}'s served version has no {what}: its export did not "
                        f"write {path.name}")
    return path


def attention_methods(version_dir: Path) -> list[str]:
    """The attention maps the version carries (file stems, e.g. "gradcampp" for gradcam++)."""
    directory = version_dir / contract.ATTENTION_DIRECTORY
    return sorted(path.stem for path in directory.glob("*.json")) if directory.is_dir() else []


def _model_entry(manager: ModelManager, name: str) -> dict:
    """What the page lists about a model: its served version and what lies beside it."""
    try:
        servable = manager.servable(name)
    except ServingError as error:
        return {"name": name, "error": error.message}
    version_dir = Path(servable.path)

    def read_json(relative: str):
        path = version_dir / relative
        return json.loads(path.read_text()) if path.is_file() else None

    return {"name": name, "version": servable.version,
            "description": read_json(contract.DESCRIPTION_FILE) or {},
            "signatures": sorted(servable.signature_names),
            "catalogue": os.path.isfile(version_dir / contract.CATALOGUE_FILE),
            "thumbnails": read_json(contract.THUMBNAILS_LAYOUT_FILE)
            if (version_dir / contract.THUMBNAILS_FILE).is_file() else None,
            "attention": attention_methods(version_dir)}


def page_url(host: str, port: int) -> str:
    """The page's address on a REST port bound to ``host`` (a wildcard host: this machine)."""
    host = "localhost" if host in ("", "0.0.0.0", "::") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{PREFIX}/"
