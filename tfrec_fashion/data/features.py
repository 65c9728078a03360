"""Interpretable item features: one-hot encodings of the items' attribute columns (I-VBPR).

I-VBPR (paper 002) replaces the thousands of opaque CNN dimensions by a few hundred named,
interpretable visual attributes, so that a user's affinity and a feature's trend can be read per
attribute value. Here such attributes are the catalogue's own columns (``items.category`` and
``items.attributes``, e.g. colour, pattern, sleeve length); each becomes one 0/1 column per
value, named ``"<column>=<value>"`` (e.g. ``"colour=red"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfrec_fashion.data.dataset import Items
from tfrec_fashion.errors import ConfigError


def attribute_onehot(items: Items, columns: Sequence[str] | None = None
                     ) -> tuple[np.ndarray, list[str]]:
    """One-hot encodes attribute columns: (float32 [n_items, F], F names "column=value").

    Args:
        items: the item table.
        columns: attribute columns to encode; "category" is ``items.category``. None = the
            category and every column of ``items.attributes``, in that order.

    Values are sorted within a column, so the encoding depends on the catalogue only. Missing
    values ("" or None) get no column: their row is all zeros within that column.

    Raises:
        ConfigError: a column the items do not have (the message lists those they have).
    """
    available = {"category": items.category, **items.attributes}
    columns = list(available) if columns is None else list(columns)
    if not columns:
        raise ConfigError("attribute_onehot: no attribute columns to encode")
    unknown = [c for c in columns if c not in available]
    if unknown:
        raise ConfigError(f"attribute_onehot: the items have no attribute {unknown[0]!r}; "
                          f"they have {sorted(available)}")
    blocks, names = [], []
    for column in columns:
        values = np.asarray(available[column]).astype(str)
        levels = sorted(set(values) - {"", "None", "nan"})
        blocks.append((values[:, None] == np.asarray(levels)[None, :]).astype(np.float32))
        names.extend(f"{column}={level}" for level in levels)
    return np.concatenate(blocks, axis=1), names
