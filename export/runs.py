"""Export a finished training run: ``tfrec-fashion export RUN_DIR --base BASE``."""

from __future__ import annotations

from pathlib import Path

from tfrec_fashion_export.parts import parts_from_recipe
from tfrec_fashion_export.writer import export_parts


def export_run(run_dir: str | Path, base: str | Path, name: str | None = None,
               version: int | None = None, label: str | None = None,
               index: str = "brute_force", index_params: dict | None = None,
               min_recall: float | None = None) -> Path:
    """Rebuilds the run's model from its directory and exports it.

    Args:
        run_dir: a run directory written by ``tfrec-fashion train``.
        base: the export base.
        name: serving name (default: the run's model name, e.g. "vbpr").
        version: default the next one.
        label: optional version label.
        index: "brute_force", "partitioned" or "scann" (``writer.export_parts``).
        index_params: the partitioned index's parameters.
        min_recall: refuse a partitioned export whose recall@10 is lower.

    Returns:
        The new version folder.
    """
    from tfrec_fashion.training.harness import load_run

    config, recipe, model = load_run(run_dir)
    parts = parts_from_recipe(recipe, model, run_dir)
    return export_parts(parts, base, name or config.model.name, version, label, index,
                        index_params, min_recall)
