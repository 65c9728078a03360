"""Recipe for Partial Dual (paper 000, 3.1.1): squared-trace-norm matrix completion of the
customer x item rating matrix, fitted by ``models.partial_dual.PartialDual`` (Riemannian trust
regions or conjugate gradient in SciPy) instead of Keras ``fit``.

The training ratings of the shared rating protocol (``ratings.py``) become the sparse matrix Y
(rows customers, columns items), centred as ``centering`` says: by default the user + item bias
model mu + b_c + b_i is removed (the plain mean with ``global``), and added back to every
prediction. Squared-trace-norm regularisation shrinks every direction of W, the per-customer
and per-item offsets included, so leaving them in Y makes the low-rank part spend its budget on
them (MovieLens-100K, C=30: RMSE 0.97 at rank 26 with the mean removed, worse than the biases
alone). The balanced factors A (customers) and B (items) with the biases appended as two columns
are the embeddings: a rating is predicted as ``offset + E_c . M_i``, which is also the score the
export's retrieval index serves. ``fold_in(model)`` gives the ``models.partial_dual.FoldIn``
that folds a new customer in from their votes (their b_c by the bias model's ridge, whose weight
the fitted model keeps as ``bias_l2``, then the one-row inner problem); ``training/newcomers.py``
measures it on customers held out of the fit. The solver checkpoints U into the run's
``backup/`` every iteration, so a killed run resumes from its last iterate when the same command
runs again; each iteration is logged to ``logs/solver.csv``.

Iterations are counted as the estimator counts them (``models/partial_dual/estimator.py``):
solver steps over all ranks, rank increases separately. ``logs/solver.csv`` has one row per
solver iteration plus one per rank phase's starting point (the fit's start, each rank increase
with its ``event``, a resumed run's start), its ``iteration`` column numbering solver iterations
across resumes; metrics.json's ``solver_iterations`` is the last row's number and
``solver_rank_increases`` the rows with an event.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from tfrec_fashion.evaluation.rating_baselines import tuned_biases
from tfrec_fashion.models.partial_dual import FoldIn, PartialDual
from tfrec_fashion.models.partial_dual.fold_in_graph import FoldInGraph
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import SolverRecipe
from tfrec_fashion.training.recipes.ratings import RatingRecipe
from tfrec_fashion.training.serving_parts import (NewCustomerQuery, RetrievalParts,
                                                  retrieval_parts)

_STATE = "solver_state.npz"
_MODEL = "partial_dual.npz"


@dataclasses.dataclass
class FittedPartialDual:
    """A fitted Partial Dual model: rating(c, i) = offset + b_c + b_i + A_c . B_i.

    Args:
        offset: the global mean removed before solving (0 with ``centering: none``).
        user_bias, item_bias: float64 [n_customers], [n_items]: the bias model removed with
            ``centering: biases`` (zeros otherwise).
        row_factors: float64 [n_customers, rank], A = Q P S^1/2 (balanced).
        column_factors: float64 [n_items, rank], B = V S^1/2.
        U: float64 [n_customers, r], the solver's point on the spectrahedron (Theta = U U^T).
        summary: solver iterations, rank increases, seconds, cost, gap, rank, stop reason.
        history: one dict per row of ``logs/solver.csv`` (solver iterations and each rank
            phase's starting point).
        bias_l2: the ridge weight of the bias model (``centering: biases``), which folding a
            new customer in needs for their b_c (0 otherwise; a file written before it was kept
            gets the prepared recipe's, chosen again from the same split).
    """

    offset: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    row_factors: np.ndarray
    column_factors: np.ndarray
    U: np.ndarray
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    bias_l2: float = 0.0

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return (self.offset + self.user_bias[user] + self.item_bias[item]
                + np.einsum("nk,nk->n", self.row_factors[user], self.column_factors[item]))

    @property
    def has_biases(self) -> bool:
        return bool(self.user_bias.any() or self.item_bias.any())

    def user_vectors(self) -> np.ndarray:
        """[n_customers, d]: A, then [b_c, 1] when there are biases (rating = offset + u . v)."""
        if not self.has_biases:
            return self.row_factors
        ones = np.ones((len(self.user_bias), 1))
        return np.hstack([self.row_factors, self.user_bias[:, None], ones])

    def item_vectors(self) -> np.ndarray:
        """[n_items, d]: B, then [1, b_i] when there are biases."""
        if not self.has_biases:
            return self.column_factors
        ones = np.ones((len(self.item_bias), 1))
        return np.hstack([self.column_factors, ones, self.item_bias[:, None]])


class PartialDualRecipe(RatingRecipe, SolverRecipe):
    """Fits ``PartialDual`` on the training ratings; evaluated by the shared rating protocol."""

    def prepare_inputs(self, dataset) -> None:
        train, n_users, n_items = self.split.train, dataset.n_users, dataset.n_items
        centering = self.model_config.centering
        self.offset = 0.0 if centering == "none" else float(np.mean(train.value))
        self.user_bias, self.item_bias = np.zeros(n_users), np.zeros(n_items)
        self.bias_l2 = 0.0
        if centering == "biases":
            fitted, chosen = tuned_biases(train, self.split.validation, n_users, n_items)
            self.user_bias, self.item_bias = fitted.user_bias, fitted.item_bias
            self.bias_l2 = float(chosen["l2"])
        centred = (train.value - self.offset - self.user_bias[train.user]
                   - self.item_bias[train.item])
        # Explicit zeros after centring are observed entries: keep the pattern via COO.
        self.matrix = scipy.sparse.coo_matrix(
            (centred, (train.user, train.item)), shape=(n_users, n_items)).tocsr()

    def estimator(self, max_iterations: int) -> PartialDual:
        arguments = {**model_arguments(self.model_config), "max_iterations": max_iterations}
        return PartialDual(**arguments, seed=self.seed, verbose=self.train_config.verbose > 0)

    def solve(self, state_dir: Path, log_dir: Path) -> FittedPartialDual:
        state_dir, log_dir = Path(state_dir), Path(log_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        start = _read_state(state_dir / _STATE)
        log = _SolverLog(log_dir / "solver.csv", append=start is not None)
        # A resumed run continues the numbering and has the rest of the iteration budget.
        done = int(log.rows[-1]["iteration"]) if start is not None and log.rows else 0
        if start is not None:
            print(f"Resuming Partial Dual after {done} solver iterations from its last iterate "
                  f"(rank {start.shape[1]}) in {state_dir}")

        def checkpoint(record) -> None:
            _write_state(state_dir / _STATE, record.U)
            log.write(record)

        estimator = self.estimator(self.model_config.max_iterations)
        estimator.fit(self.matrix, U0=start, callback=checkpoint, start_iteration=done)
        summary = {"solver": self.model_config.solver,
                   "iterations": estimator.iterations_,
                   "rank_increases": sum(1 for row in log.rows if row.get("event")),
                   "fit_seconds": round(estimator.fit_seconds_, 3),
                   "cost": float(estimator.cost_), "gap": float(estimator.gap_),
                   "relative_gap": float(estimator.relative_gap_), "rank": int(estimator.rank_),
                   "stop_reason": estimator.stop_reason_}
        return FittedPartialDual(self.offset, self.user_bias, self.item_bias,
                                 estimator.row_factors_, estimator.column_factors_,
                                 estimator.U_, summary, log.rows, self.bias_l2)

    def save_model(self, model: FittedPartialDual, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
        arrays.update(summary=json.dumps(model.summary), history=json.dumps(model.history))
        np.savez(directory / _MODEL, **arrays)

    def load_model(self, directory: Path) -> FittedPartialDual:
        with np.load(Path(directory) / _MODEL, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        arrays["offset"] = float(arrays["offset"])
        # A file from before bias_l2 was kept: the prepared recipe chose it again from the same
        # split and grid (tuned_biases is deterministic), so fold-in still has it.
        arrays["bias_l2"] = float(arrays.get("bias_l2", getattr(self, "bias_l2", 0.0)))
        for name in ("summary", "history"):
            arrays[name] = json.loads(str(arrays[name]))
        return FittedPartialDual(**arrays)

    def solver_summary(self, model: FittedPartialDual) -> dict[str, Any]:
        return {f"solver_{key}": value for key, value in model.summary.items()}

    def history(self, model: FittedPartialDual) -> dict[str, list[float]]:
        columns: dict[str, list[float]] = {}
        for row in model.history:
            for key, value in row.items():
                columns.setdefault(key, []).append(value)
        return columns

    # ------------------------------------------------------------------ the rating protocol
    def predict(self, model: FittedPartialDual, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return model.predict(user, item)

    def user_vectors(self, model: FittedPartialDual) -> np.ndarray:
        return model.user_vectors()

    def item_vectors(self, model: FittedPartialDual, epoch: int | None = None) -> np.ndarray:
        return model.item_vectors()

    def fold_in(self, model: FittedPartialDual, shrink_to: str = "zero") -> FoldIn:
        """Folds new customers into ``model`` from their votes (``models.partial_dual.FoldIn``,
        the one-row inner problem in closed form), with this run's C, rating range, centring
        and item ids; a customer with no votes gets the mean of the vectors of the customers
        the model was fitted on (those with training votes). ``shrink_to``: see ``FoldIn``
        ("cold_start" suits ``centering: global``)."""
        fitted = np.bincount(self.split.train.user, minlength=len(model.user_bias)) > 0
        return FoldIn(model.column_factors, self.model_config.C, self.rating_range,
                      offset=model.offset,
                      item_bias=model.item_bias if model.has_biases else None,
                      bias_l2=model.bias_l2,
                      cold_start=model.user_vectors()[fitted].mean(axis=0),
                      item_ids=self.dataset.items.ids, shrink_to=shrink_to)

    def served_shrink_to(self) -> str:
        """What the served fold-in shrinks a newcomer with few votes towards: the solver's own
        zero customer with ``centering: biases`` (popularity is in the biases), the cold-start
        (mean) customer otherwise, where the popularity direction lives in the factors
        (``models/partial_dual/fold_in.py``: with ``global`` the zero customer loses to the
        mean one at 5 votes, the mean-centred ridge beats it from 5 votes on)."""
        return "zero" if self.model_config.centering == "biases" else "cold_start"

    def new_customer_query(self, model: FittedPartialDual) -> NewCustomerQuery:
        """The served fold-in (``recommend_new_customer``): ``fold_in(model,
        served_shrink_to())`` in TensorFlow ops (``FoldInGraph``, float32). Its vectors have
        the layout of ``user_vectors`` ([a, b_c, 1] with biases), so a newcomer's query is
        scored against ``item_vectors`` exactly as a fitted customer's."""
        shrink_to = self.served_shrink_to()
        graph = FoldInGraph(self.fold_in(model, shrink_to), name="fold_in")
        return NewCustomerQuery(
            graph.user_vectors_by_id, self.rating_range, [graph],
            f"Partial Dual fold-in: the one-row inner problem over the fitted item factors "
            f"(C={self.model_config.C:g}, centering {self.model_config.centering}, shrunk "
            f"towards the {'zero' if shrink_to == 'zero' else 'mean'} customer); no votes: the "
            f"mean fitted customer")

    def serving_parts(self, model: FittedPartialDual) -> RetrievalParts:
        """The retrieval head's parts (``retrieval_parts``) with the served fold-in, so the
        export answers ``recommend_new_customer``."""
        parts = retrieval_parts(self, model)
        parts.new_customer = self.new_customer_query(model)
        return parts

    def embeddings(self, model: FittedPartialDual, **metadata):
        return super().embeddings(model, offset=model.offset, rank=int(model.row_factors.shape[1]),
                                  C=self.model_config.C, centering=self.model_config.centering,
                                  **metadata)


# ---------------------------------------------------------------------------- files
def _write_state(path: Path, U: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as file:
        np.savez(file, U=U)
    os.replace(temporary, path)


def _read_state(path: Path) -> np.ndarray | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return np.array(data["U"])


class _SolverLog:
    """``logs/solver.csv``: one row per record of the fit, solver iterations and each rank
    phase's starting point (appended to on resume)."""

    def __init__(self, path: Path, append: bool):
        self.path = path
        self.columns: list[str] | None = None
        self.rows: list[dict[str, Any]] = []
        if append and path.exists():
            with path.open(newline="") as handle:
                self.rows = [{k: _number(v) for k, v in row.items()}
                             for row in csv.DictReader(handle)]
        elif path.exists():
            path.unlink()

    def write(self, record) -> None:
        fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        row = {k: v for k, v in fields.items() if isinstance(v, (int, float, str, np.number))}
        row.update({k: v for k, v in fields["step"].items() if isinstance(v, (int, float, str))})
        self.rows.append(row)
        if self.columns is None and self.path.exists():
            self.columns = _header(self.path)
        if self.columns is not None and set(row) <= set(self.columns):
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.columns).writerow(row)
            return
        # A row with fields the header lacks (a rank phase's starting point has no solver step
        # details; the next row has them): the header becomes the union and the file is
        # rewritten whole, atomically, so no column is ever dropped.
        self.columns = list(dict.fromkeys([*(self.columns or []), *row]))
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(temporary, self.path)


def _header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle))


def _number(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value
