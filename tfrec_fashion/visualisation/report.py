"""The run report: one self-contained HTML file of a run directory or of the demo's workdir.

``tfrec-fashion report DIR`` reads what ``train``, ``demo`` and ``visualize`` wrote and puts it on
one page a person can open offline, mail or attach to an issue: images are embedded as ``data:``
URIs, the CSS is inline, nothing is fetched and no script runs. ``DIR`` is either

- a run directory (``metrics.json`` in it, written by ``tfrec-fashion train``), or
- the demo's workdir (``runs/demo``: one such folder per run, ``summary.md`` / ``summary.json``,
  ``<run>_items.png``, ``<run>_trends.png``, ``recommendations.png`` and
  ``complete_the_look.png``).

The page has a table of contents, the demo's summary table and served recommendations, then a
section per run: the held-out metrics in its protocol's table (the model beside the baselines and
the planted oracle: ``evaluation.protocols``), its training curves (``<run>/training_curves.png``
or ``convergence.png``, drawn from ``logs/`` when the run has neither), its items, trends and
attention maps (``<run>/attention/attention_<method>.png``, with the sanity line where
``visualize --sanity`` wrote one), every number of its metrics.json and its config. What a
directory lacks is left out; a directory that is neither kind is refused in one line.

    write_report("runs/demo")               # -> runs/demo/report.html
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime
import html
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from tfrec_fashion.errors import MissingDataError
from tfrec_fashion.evaluation.ranking_table import BASELINE_ROWS

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
#: What ``plot_solver_convergence`` draws of a solver's ``logs/solver.csv``.
SOLVER_COLUMNS = ("iteration", "relative_gap", "grad_norm", "rank")
#: The row a run alone is compared with in its ranking table, beside the best other one.
REFERENCE_ROW = BASELINE_ROWS["popularity"]

# Captions of the figures the demo and the run directory hold, by where they are.
CURVES_CAPTION = ("Training curves: the task loss per epoch (left) and the validation metrics "
                  "(right); dashed lines are the rows the run's protocol reports beside the model "
                  "on the test split (planted oracle, baselines).")
CONVERGENCE_CAPTION = ("Solver convergence: the relative duality gap (the optimality certificate) "
                       "and the gradient norm per solver iteration (left, log scale), and the "
                       "rank the solver grew to (right).")
ITEMS_CAPTION = "The first items of the run's world, as the models see them, with their titles."
TRENDS_CAPTION = ("Learned appeal of each visual attribute over the time epochs (I-VBPR "
                  "Figure 2): the features whose visual bias moved most.")
RECOMMENDATIONS_CAPTION = (
    "Served recommendations (the export, answered over gRPC by our TF Serving-compatible server): "
    "top row, a customer's last purchases; middle, the top-10 served to them; bottom, the top-10 "
    "an unknown customer gets (cold start).")
LOOK_CAPTION = (
    "Complete the look, served (the look head over gRPC, no customer): a row per query product, "
    "then the items most like it (similar: cosine of EfficientNet-Lite0 vectors, its category) "
    "and the items that best complete it (complementary: cosine of the style vectors, the other "
    "outfit slots' categories).")
ATTENTION_CAPTION = ("Attention maps ({method}, tf-keras-vis): a row per item, a column per "
                     "customer; each image with the map of that customer's score overlaid, and "
                     "the score. Where the maps differ between customers, the model looks at "
                     "different parts of the garment for them.")


@dataclasses.dataclass
class Figure:
    """One image of the report and what it shows."""

    title: str
    png: Path
    caption: str


@dataclasses.dataclass
class RunSection:
    """One run of the directory: its files, read once."""

    name: str
    directory: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    figures: list[Figure] = dataclasses.field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "run-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


def write_report(directory: str | Path, out: str | Path | None = None) -> Path:
    """Writes the HTML report of a run directory or the demo's workdir and returns its path.

    Args:
        directory: a run directory (holding ``metrics.json``) or the demo's workdir (a folder
            per run, ``summary.md``).
        out: the HTML file to write (default ``<directory>/report.html``).

    Raises:
        MissingDataError: ``directory`` is neither a run directory nor a demo workdir (one line
            naming what it lacks).
    """
    directory = Path(directory)
    run_dirs = find_runs(directory)
    out = Path(out) if out else directory / REPORT_FILE
    with tempfile.TemporaryDirectory() as scratch:  # curves drawn for runs that have none
        runs = [_read_run(run_dir, directory, Path(scratch)) for run_dir in run_dirs]
        claimed = {figure.png for run in runs for figure in run.figures}
        overview = _overview_figures(directory, claimed) if run_dirs[0] != directory else []
        page = _page(directory, runs, overview)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def find_runs(directory: Path) -> list[Path]:
    """The finished runs ``directory`` holds: itself when it is a run directory, else its run
    folders (in summary.json's order when the demo wrote one); a one-line error otherwise."""
    if not directory.is_dir():
        raise MissingDataError(f"{directory} is not a directory; pass a run directory written by "
                               "`tfrec-fashion train` or the demo's workdir (runs/demo)")
    if (directory / METRICS_FILE).is_file():
        return [directory]
    if (directory / CONFIG_FILE).is_file():
        raise MissingDataError(f"{directory} holds an unfinished run (no {METRICS_FILE}); "
                               "finish it with `tfrec-fashion train` first")
    runs = sorted(path.parent for path in directory.glob(f"*/{METRICS_FILE}"))
    summary = directory / "summary.json"
    if summary.is_file():
        order = list(json.loads(summary.read_text()))
        runs.sort(key=lambda path: order.index(path.name) if path.name in order else len(order))
    if not runs:
        raise MissingDataError(f"{directory} is neither a run directory (no {METRICS_FILE}) nor "
                               f"the demo's workdir (no run folders with {METRICS_FILE})")
    return runs


# ----------------------------------------------------------------------------- reading a run
def _read_run(run_dir: Path, directory: Path, scratch: Path) -> RunSection:
    from tfrec_fashion.config import read_yaml

    config_path = run_dir / CONFIG_FILE
    run = RunSection(run_dir.name, run_dir, json.loads((run_dir / METRICS_FILE).read_text()),
                     read_yaml(config_path) if config_path.is_file() else {})
    curves = _curves(run, scratch)
    if curves:
        run.figures.append(curves)
    # The demo draws a world's items and trends beside the run folders, named after the run.
    for suffix, title, caption in (("items", "Items", ITEMS_CAPTION),
                                   ("trends", "Trends", TRENDS_CAPTION)):
        path = directory / f"{run.name}_{suffix}.png"
        if run_dir != directory and path.is_file():
            run.figures.append(Figure(title, path, caption))
    run.figures.extend(_attention_figures(run_dir / "attention"))
    return run


def _curves(run: RunSection, scratch: Path) -> Figure | None:
    """The run's training curves (or a solver's convergence): the demo's PNG, else drawn from
    the run's log; None when it has neither."""
    for name, caption in (("training_curves.png", CURVES_CAPTION),
                          ("convergence.png", CONVERGENCE_CAPTION)):
        if (run.directory / name).is_file():
            return Figure("Training curves", run.directory / name, caption)
    model, data = run.config.get("model", {}), run.config.get("data", {})
    title = f"{run.name}: {model.get('name', 'model')} on {data.get('name', 'data')}"
    solver_log, epoch_log = run.directory / "logs" / "solver.csv", \
        run.directory / "logs" / "training.csv"
    if solver_log.is_file():
        from tfrec_fashion.visualisation.solver_convergence import plot_solver_convergence

        path = plot_solver_convergence(_read_columns(solver_log, SOLVER_COLUMNS), scratch / f"{run.anchor}.png",
                                       title, model.get("gap_tolerance"))
        return Figure("Training curves", path, CONVERGENCE_CAPTION)
    if epoch_log.is_file():
        from tfrec_fashion.evaluation.protocols import protocol_of
        from tfrec_fashion.training.harness import read_log  # its resumed-run rule included
        from tfrec_fashion.visualisation.training_curves import plot_training_curves

        reference = protocol_of(run.metrics).curve_references(run.metrics)
        path = plot_training_curves(read_log(epoch_log), scratch / f"{run.anchor}.png",
                                    title=title, reference=reference)
        return Figure("Training curves", path, CURVES_CAPTION)
    return None


def _read_columns(path: Path, columns: tuple[str, ...]) -> dict[str, list[float]]:
    """Numeric ``columns`` of a CSV log as column -> values (blank: NaN); the log's other
    columns (a solver's events, in words) are left out."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {column: [float(row[column]) if row[column] else float("nan") for row in rows]
            for column in columns if rows and column in rows[0]}


def _attention_figures(folder: Path) -> list[Figure]:
    """``visualize``'s PNGs, in the order of its methods, each with its sanity line if any."""
    from tfrec_fashion.visualisation.attention import METHODS

    order = [f"attention_{method.replace('++', 'pp')}" for method in METHODS]
    figures = []
    for path in sorted(folder.glob("attention_*.png"),
                       key=lambda p: order.index(p.stem) if p.stem in order else len(order)):
        method = path.stem.removeprefix("attention_").replace("pp", "++")
        caption = ATTENTION_CAPTION.format(method=method)
        sanity = folder / f"sanity_{path.stem.removeprefix('attention_')}.json"
        if sanity.is_file():
            line = json.loads(sanity.read_text()).get("line")
            caption += f" Sanity checks: {line}" if line else ""
        figures.append(Figure(f"Attention maps: {method}", path, caption))
    return figures


def _overview_figures(directory: Path, claimed: set[Path]) -> list[Figure]:
    """The workdir's own figures: the served recommendations and complete the look, then any
    PNG no run claimed."""
    figures = []
    for name, heading, caption in (
            ("recommendations.png", "Served recommendations", RECOMMENDATIONS_CAPTION),
            ("complete_the_look.png", "Complete the look, served", LOOK_CAPTION)):
        if (directory / name).is_file():
            figures.append(Figure(heading, directory / name, caption))
    claimed = claimed | {figure.png for figure in figures}
    for path in sorted(directory.glob("*.png")):
        if path not in claimed:
            figures.append(Figure(path.stem, path, f"{path.name}, as the workdir holds it."))
    return figures


# ----------------------------------------------------------------------------- writing the page
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; margin: 0; background: #fafafa; }
nav { position: fixed; top: 0; left: 0; bottom: 0; width: 230px; overflow-y: auto;
      padding: 16px; background: #263238; color: #eceff1; box-sizing: border-box; }
nav a { color: #b2ebf2; text-decoration: none; } nav a:hover { text-decoration: underline; }
nav ul { padding-left: 16px; margin: 4px 0; } nav > ul { padding-left: 0; list-style: none; }
nav h2 { font-size: 16px; margin: 0 0 8px; color: #fff; }
main { margin-left: 230px; padding: 16px 32px; max-width: 1150px; }
section.run { border-top: 2px solid #cfd8dc; margin-top: 32px; }
h1 { margin-top: 8px; } .meta { color: #607d8b; }
div.table { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0; background: #fff; font-size: 14px; }
th, td { border: 1px solid #cfd8dc; padding: 3px 9px; } th { background: #eceff1; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 12px 0 24px; background: #fff; padding: 8px; border: 1px solid #e0e0e0; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #455a64; font-size: 14px; margin-top: 6px; }
pre { background: #fff; border: 1px solid #e0e0e0; padding: 8px; overflow-x: auto; }
details { margin: 8px 0; } summary { cursor: pointer; color: #37474f; }
:target { scroll-margin-top: 8px; }
"""


def _page(directory: Path, runs: list[RunSection], overview: list[Figure]) -> str:
    is_workdir = runs[0].directory != directory
    title = f"Run report: {directory.resolve().name}"
    toc, body = [], []
    if is_workdir:
        toc.append('<li><a href="#summary">Summary</a></li>')
        body.append(_summary_section(directory, runs, overview))
    for run in runs:
        items = "".join(f'<li><a href="#{run.anchor}-{_slug(figure.title)}">'
                        f"{html.escape(figure.title)}</a></li>" for figure in run.figures)
        toc.append(f'<li><a href="#{run.anchor}">{html.escape(run.name)}</a>'
                   f"<ul>{items}</ul></li>")
        body.append(_run_section(run))
    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            f'<nav><h2>Contents</h2><ul>{"".join(toc)}</ul></nav>\n<main>'
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="meta">{html.escape(str(directory))}: {len(runs)} run(s); written '
            f"{written} by <code>tfrec-fashion report</code>.</p>\n"
            + "\n".join(body) + "</main></body></html>\n")


def _summary_section(directory: Path, runs: list[RunSection], overview: list[Figure]) -> str:
    parts = ['<section id="summary"><h2>Summary</h2>']
    summary = directory / "summary.md"
    if summary.is_file():
        parts.append("<p>Every run's held-out metrics beside its oracle and baselines, and the "
                     "checks of its served export, as the demo printed them:</p>")
        parts.append(markdown_to_html(summary.read_text()))
    parts.append(_differences(runs))
    parts.extend(_figure(figure, _slug(figure.title)) for figure in overview)
    return "\n".join(parts) + "</section>"


def _run_section(run: RunSection) -> str:
    model, data = run.config.get("model", {}), run.config.get("data", {})
    facts = [f"{model.get('name', '?')} on {data.get('name', '?')}",
             f"protocol {run.metrics.get('protocol', '?')}"]
    if run.metrics.get("best_epoch") is not None:
        facts.append(f"best epoch {run.metrics['best_epoch']} of {run.metrics.get('epochs_run')}")
    if run.metrics.get("fit_seconds") is not None:
        facts.append(f"fit in {run.metrics['fit_seconds']} s")
    parts = [f'<section class="run" id="{run.anchor}"><h2>{html.escape(run.name)}</h2>',
             f'<p class="meta">{html.escape(" · ".join(facts))}</p>', "<h3>Held-out metrics</h3>",
             _protocol_table(run)]
    parts.extend(_figure(figure, f"{run.anchor}-{_slug(figure.title)}") for figure in run.figures)
    rows = [[key, _number(value)] for key, value in run.metrics.items()]
    parts.append(f"<details><summary>Every number of {METRICS_FILE}</summary>"
                 f"{_table(['metric', 'value'], rows)}</details>")
    if run.config:
        parts.append(f"<details><summary>The run's {CONFIG_FILE}</summary><pre>"
                     f"{html.escape((run.directory / CONFIG_FILE).read_text())}</pre></details>")
    return "\n".join(parts) + "</section>"


def _protocol_table(run: RunSection) -> str:
    """The run's table under its protocol (``tfrec-fashion table``'s, with this run alone): the
    model beside the baselines and the oracle; its improvement over popularity and over the best
    of them (where the protocol's table reports improvements)."""
    from tfrec_fashion.errors import TfrecFashionError
    from tfrec_fashion.evaluation.protocols import protocol_of

    label = str(run.config.get("data", {}).get("name", "data"))
    try:
        table = protocol_of(run.metrics).table(label, {run.name: run.metrics},
                                               proposed=run.name, reference=REFERENCE_ROW)
    except (KeyError, TfrecFashionError):  # e.g. a run whose evaluation was cut short
        return "<p>No protocol table: the metrics below are all the run recorded.</p>"
    return markdown_to_html(table.format_markdown())


def _differences(runs: list[RunSection]) -> str:
    """The config keys whose values differ between the runs (run_dir aside), run by run."""
    flat = {run.name: _flatten(run.config) for run in runs}
    keys = sorted({key for values in flat.values() for key in values} - {"run_dir"})
    differing = [key for key in keys
                 if len({repr(values.get(key)) for values in flat.values()}) > 1]
    if len(runs) < 2 or not differing:
        return ""
    rows = [[key, *(str(flat[run.name].get(key, "-")) for run in runs)] for key in differing]
    return (f"<details><summary>Config keys that differ between the runs "
            f"({len(differing)})</summary>{_table(['key', *flat], rows)}</details>")


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted key -> value (``model.latent_dim``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _figure(figure: Figure, anchor: str) -> str:
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    return (f'<figure id="{anchor}"><h3>{html.escape(figure.title)}</h3>'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(figure.title)}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_inline(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(
        f'<td class="number">{_inline(cell)}</td>' if _is_number(cell) else
        f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    # Wide tables (the demo's summary) scroll inside the page rather than past it.
    return (f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def markdown_to_html(text: str) -> str:
    """The Markdown the tables write (``format_markdown``, summary.md) as HTML: pipe tables
    become tables, other paragraphs paragraphs; ``**bold**`` and ```code``` kept."""
    parts = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        table = [line for line in lines if line.startswith("|")]
        prose = [line for line in lines if not line.startswith("|")]
        if prose:
            parts.append(f"<p>{_inline(' '.join(prose))}</p>")
        if len(table) >= 2:
            cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
            parts.append(_table(cells[0], [row for row in cells[1:]
                                           if not all(set(c) <= set(":-") for c in row)]))
    return "\n".join(parts)


def _inline(text: str) -> str:
    text = html.escape(str(text))
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _is_number(cell: str) -> bool:
    return bool(re.fullmatch(r"\**[-+]?(\d[\d.]*(e[-+]?\d+)?%?|nan|n/a|-)\**", str(cell)))


def _number(value: Any) -> str:
    """A metric as the tables print it: floats to 4 decimals (tiny ones in e-notation)."""
    if isinstance(value, float):
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3e}"
    return str(value)


def _slug(text: str) -> str:
    """An HTML id from a title: "Attention maps: gradcam++" -> "attention-maps-gradcampp"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("+", "p")).strip("-")
