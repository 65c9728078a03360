"""Writing matplotlib figures to PNG, the same way for every plot of the project."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed


def save_figure(figure, path: str | Path, title: str = "", dpi: int = 110) -> Path:
    """Titles, lays out and saves ``figure`` as a PNG (creating folders), then closes it."""
    import matplotlib.pyplot as plt

    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
