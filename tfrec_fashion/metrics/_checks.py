"""Input checks and the NaN-aware mean shared by every metric in this folder.

Each check raises ``ValueError`` naming the argument and what was received, in the project's
style: ``"`k` must be positive. Received: k=0"``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse


def check_positive_int(value: Any, name: str) -> int:
    """Returns ``value`` as an ``int`` if it is a positive integer, else raises ``ValueError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        # ValueError, not TypeError: callers catch one error type for every bad argument here.
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")  # noqa: TRY004
    if value <= 0:
        raise ValueError(f"`{name}` must be positive. Received: {name}={value}")
    return int(value)


def as_float_array(values: Any, name: str, ndim: int, shape_doc: str) -> np.ndarray:
    """Returns ``values`` as a float64 array with ``ndim`` axes and no NaN, else raises."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(
            f"`{name}` must be {ndim}-D {shape_doc}. Received: {name}.shape={array.shape}"
        )
    if np.isnan(array).any():
        n_nan = int(np.isnan(array).sum())
        raise ValueError(f"`{name}` must not contain NaN. Received: {n_nan} NaN values")
    return array


def check_same_shape(
    first: np.ndarray, first_name: str, second: np.ndarray, second_name: str
) -> None:
    """Raises ``ValueError`` unless the two arrays have the same shape."""
    if first.shape != second.shape:
        raise ValueError(
            f"`{first_name}` and `{second_name}` must have the same shape. Received: "
            f"{first_name}.shape={first.shape}, {second_name}.shape={second.shape}"
        )


def binary_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """Maps 1-D labels in {+1, -1}, {1, 0} or bool to a bool array (True = positive)."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D. Received: {name}.shape={array.shape}")
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(
            f"`{name}` must hold +1/-1, 1/0 or bool values. Received: dtype={array.dtype}"
        )
    present = set(np.unique(array).tolist())
    if not (present <= {1, -1} or present <= {1, 0}):
        raise ValueError(
            f"`{name}` must hold +1/-1, 1/0 or bool values (one convention). "
            f"Received values: {sorted(present)}"
        )
    return array == 1


def check_indicator_matrix(matrix: Any, name: str, shape: tuple[int, int]) -> Any:
    """Checks a dense or scipy.sparse [n_users, n_items] indicator; returns it row-sliceable."""
    if scipy.sparse.issparse(matrix):
        matrix = scipy.sparse.csr_array(matrix)
    else:
        matrix = np.asarray(matrix)
    if matrix.shape != shape:
        raise ValueError(
            f"`{name}` must have shape [n_users, n_items]={shape}. "
            f"Received: {name}.shape={matrix.shape}"
        )
    return matrix


def indicator_rows(matrix: Any, rows: slice) -> np.ndarray:
    """Dense bool rows of an indicator from :func:`check_indicator_matrix` (nonzero = marked)."""
    if scipy.sparse.issparse(matrix):
        return matrix[rows].toarray() != 0
    return np.asarray(matrix[rows]) != 0


def mean_of_defined(values: np.ndarray, what: str, why: str, stacklevel: int = 3) -> float:
    """Mean of the non-NaN entries; NaN and a ``RuntimeWarning`` saying ``why`` if none."""
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        message = f"{what} is undefined: {why}. Returning NaN."
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel)
        return float("nan")
    return float(defined.mean())
