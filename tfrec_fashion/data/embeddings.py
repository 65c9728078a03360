"""The shared embeddings file: customer and item vectors keyed by id (Partial Dual, StyNet).

PSA-Net (paper 000, section 3.2) computes its subspace attention from a *fixed* customer
embedding learned beforehand by Partial Dual (3.1.1) or StyNet (3.1.2); section 7.2.1 swaps one
source for the other. Both therefore write one format, and PSA-Net reads it without knowing
which model made it. A run writes ``<run_dir>/embeddings.npz``; ``load`` reads any such file.

The file is a NumPy ``.npz`` (no pickles) holding::

    user_ids      str [n_users]          unique customer ids (the dataset's ``users.ids``)
    user_vectors  float32 [n_users, d]   customer embeddings E_c
    item_ids      str [n_items]          unique item ids
    item_vectors  float32 [n_items, d_item]  item embeddings M_i
    metadata      str                    JSON: model, dataset, rank, how vectors score (below)

``metadata["score"]`` says how the vectors relate to ratings: ``"dot"`` when the model's rating
is ``offset + user . item`` (Partial Dual, whose ``metadata["offset"]`` is the centring it
removed), ``"dot_retrieval"`` when the dot product is a retrieval score only (StyNet's
retrieval head; its rating comes from its MLP head). Files are written to a temporary name and
renamed, so a reader never sees half a file.

Example:

    embeddings = CustomerEmbeddings.load("runs/partial_dual/embeddings.npz")
    vectors, known = embeddings.user_vectors_for(["u0003", "a-new-customer"])
    # known == [True, False]: the new customer gets the mean vector (cold start)
    embeddings = embeddings.with_users(["a-new-customer"], [folded_in_vector])  # appended
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tfrec_fashion.errors import DataError, MissingDataError

FILE_NAME = "embeddings.npz"
_ARRAYS = ("user_ids", "user_vectors", "item_ids", "item_vectors")


@dataclasses.dataclass
class CustomerEmbeddings:
    """Customer and item embeddings keyed by id.

    Args:
        user_ids: str [n_users], unique.
        user_vectors: float32 [n_users, d].
        item_ids: str [n_items], unique.
        item_vectors: float32 [n_items, d_item] (d_item == d when ``metadata["score"]`` is a
            dot product).
        metadata: JSON-serialisable facts: "model", "dataset", "score", "offset", ...
    """

    user_ids: np.ndarray
    user_vectors: np.ndarray
    item_ids: np.ndarray
    item_vectors: np.ndarray
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user_ids = np.asarray(self.user_ids).astype(str)
        self.item_ids = np.asarray(self.item_ids).astype(str)
        self.user_vectors = np.asarray(self.user_vectors, np.float32)
        self.item_vectors = np.asarray(self.item_vectors, np.float32)
        self.validate()

    @property
    def dim(self) -> int:
        return int(self.user_vectors.shape[1])

    def validate(self, source: str = "embeddings") -> None:
        """Raises ``DataError`` naming the problem: shapes, non-finite values, duplicate ids."""
        for kind in ("user", "item"):
            ids, vectors = getattr(self, f"{kind}_ids"), getattr(self, f"{kind}_vectors")
            if ids.ndim != 1 or vectors.ndim != 2 or len(ids) != len(vectors):
                raise DataError(f"{source}: {kind}_vectors must be [n_{kind}s, d] with one row "
                                f"per id. Received: {len(ids)} {kind}_ids and {kind}_vectors "
                                f"of shape {vectors.shape}")
            if len(ids) == 0:
                raise DataError(f"{source}: no {kind}s")
            unique, counts = np.unique(ids, return_counts=True)
            if (counts > 1).any():
                raise DataError(f"{source}: {kind} id {str(unique[counts > 1][0])!r} appears "
                                f"{counts.max()} times; ids must be unique")
            bad = ~np.isfinite(vectors).all(axis=1)
            if bad.any():
                raise DataError(f"{source}: the {kind} vector of {str(ids[np.argmax(bad)])!r} is not "
                                "finite (NaN or inf); the model that wrote it diverged")
        if self.metadata.get("score", "dot").startswith("dot") \
                and self.item_vectors.shape[1] != self.dim:
            raise DataError(f"{source}: dot-product embeddings need equal sizes. Received: "
                            f"user d={self.dim}, item d={self.item_vectors.shape[1]}")

    def user_vectors_for(self, user_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(float32 [n, d] vectors, bool [n] known) for ``user_ids``.

        An id the file does not hold (a new customer) gets the mean customer vector, the
        cold-start rule the export uses too, and ``known`` False, so a caller can tell.
        """
        return _lookup(self.user_ids, self.user_vectors, user_ids)

    def item_vectors_for(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Same as ``user_vectors_for`` for items (unknown items get the mean item vector)."""
        return _lookup(self.item_ids, self.item_vectors, item_ids)

    def with_users(self, user_ids: Sequence[str], user_vectors: Any) -> CustomerEmbeddings:
        """A copy with new customers appended (e.g. folded in from their votes by
        ``models.partial_dual.FoldIn``): their ids after the file's, in the order given;
        ``metadata["added_users"]`` counts the customers appended this way.

        Args:
            user_ids: str [n], ids the file does not hold yet, unique.
            user_vectors: float [n, d], the customers' vectors, in the file's layout.

        Raises:
            DataError: an id already in the file or repeated among ``user_ids`` (a customer is
                never silently replaced), a vector of the wrong size, or one not finite.
        """
        user_ids = np.asarray(user_ids).astype(str).reshape(-1)
        user_vectors = np.asarray(user_vectors, np.float32)
        if user_vectors.ndim == 1 and len(user_ids) == 1:
            user_vectors = user_vectors[None, :]
        if user_vectors.shape != (len(user_ids), self.dim):
            raise DataError(f"new customers need one vector of size d={self.dim} per id. "
                            f"Received: {len(user_ids)} ids and vectors of shape "
                            f"{user_vectors.shape}")
        present = np.isin(user_ids, self.user_ids)
        if present.any():
            raise DataError(f"customer id {str(user_ids[np.argmax(present)])!r} is already in "
                            "the embeddings; a new customer needs a new id (ids are unique)")
        metadata = {**self.metadata,
                    "added_users": int(self.metadata.get("added_users", 0)) + len(user_ids)}
        return dataclasses.replace(
            self, user_ids=np.concatenate([self.user_ids, user_ids]),
            user_vectors=np.concatenate([self.user_vectors, user_vectors]), metadata=metadata)

    # ------------------------------------------------------------------ file
    def save(self, path: str | os.PathLike) -> Path:
        """Writes the ``.npz`` atomically (temporary file, then rename) and returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, user_ids=self.user_ids, user_vectors=self.user_vectors,
                         item_ids=self.item_ids, item_vectors=self.item_vectors,
                         metadata=np.array(json.dumps(self.metadata, default=float)))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CustomerEmbeddings:
        """Reads a file written by ``save`` (a run directory is accepted too); clear errors
        for a missing, truncated or incomplete file."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        if not path.exists():
            raise MissingDataError(f"no embeddings file at {path}; train Partial Dual or StyNet "
                                   "(`tfrec-fashion train configs/partial_dual.yaml`) to write one")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [name for name in (*_ARRAYS, "metadata") if name not in data.files]
                if missing:
                    raise DataError(f"{path}: not an embeddings file, it lacks {missing}")
                arrays = {name: data[name] for name in _ARRAYS}
                metadata = json.loads(str(data["metadata"]))
        except DataError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
            raise DataError(f"{path}: unreadable embeddings file ({error})") from error
        try:
            return cls(**arrays, metadata=metadata)
        except DataError as error:
            raise DataError(f"{path}: {error}") from error


def _lookup(ids: np.ndarray, vectors: np.ndarray, wanted: Sequence[str]
            ) -> tuple[np.ndarray, np.ndarray]:
    wanted = np.asarray(wanted).astype(str)
    order = np.argsort(ids)
    position = np.searchsorted(ids, wanted, sorter=order)
    position = np.minimum(position, len(ids) - 1)
    rows = order[position]
    known = ids[rows] == wanted
    out = np.where(known[:, None], vectors[rows], vectors.mean(axis=0, keepdims=True))
    return out.astype(np.float32), known
