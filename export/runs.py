"""Export a finished training run: ``tfrec-fashion export RUN_DIR --base BASE``.

Reads only what the run wrote for serving (``<run_dir>/serving``, see
``tfrec_fashion.training.serving_parts``): no dataset is built, no recipe prepared, no feature
extracted. A run trained before runs wrote their serving parts is rebuilt once from its config
and weights, and its parts are written into it, so the next export of it reads them too.
"""

from __future__ import annotations

from pathlib import Path

from tfrec_fashion.training.serving_parts import Parts, has_parts, load_parts
from tfrec_fashion_export.writer import export_parts


def run_parts(run_dir: str | Path) -> Parts:
    """The serving parts of the finished run in ``run_dir``, with ``info["run_dir"]`` set."""
    run_dir = Path(run_dir)
    if not has_parts(run_dir):
        from tfrec_fashion.training.harness import load_run, save_run_parts

        _, recipe, model = load_run(run_dir)  # says what is missing (no config, no weights)
        print(f"{run_dir} predates serving parts: rebuilt its model once to write them")
        save_run_parts(recipe, model, run_dir)
    parts = load_parts(run_dir)
    parts.info["run_dir"] = str(run_dir.resolve())
    return parts


def export_run(run_dir: str | Path, base: str | Path, name: str | None = None,
               version: int | None = None, label: str | None = None,
               index: str = "brute_force", index_params: dict | None = None,
               min_recall: float | None = None) -> Path:
    """Exports the finished run in ``run_dir`` from its serving parts.

    Args:
        run_dir: a run directory written by ``tfrec-fashion train``.
        base: the export base.
        name: serving name (default: the run's model name, e.g. "vbpr").
        version: default the next one.
        label: optional version label.
        index: "brute_force", "partitioned", "scann" or "hamming" (``writer.export_parts``).
        index_params: the partitioned or Hamming index's parameters.
        min_recall: refuse a partitioned or Hamming export whose recall@10 is lower.

    Returns:
        The new version folder.
    """
    parts = run_parts(run_dir)
    return export_parts(parts, base, name or parts.info["model"], version, label, index,
                        index_params, min_recall, run_dir)
