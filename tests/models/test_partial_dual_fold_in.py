"""Partial Dual fold-in: the closed form against PARTIAL_DUAL.md's inner problem for one row,
the fitted customers' own rows recovered from their votes, the in-graph version equal to the
NumPy one (random inputs, variable-length votes under an input_signature), cold start and clear
errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf

from tfrec_fashion.models.partial_dual import FoldIn, PartialDual
from tfrec_fashion.models.partial_dual.fold_in_graph import FoldInGraph


def random_fold_in(seed: int, n_items: int = 40, k: int = 5, biases: bool = True,
                   shrink_to: str = "zero") -> FoldIn:
    rng = np.random.default_rng(seed)
    cold_start = rng.normal(size=k + 2 * biases)
    if biases:
        cold_start[-1] = 1.0  # the file layout [a, b_c, 1]
    return FoldIn(rng.normal(size=(n_items, k)) * 0.3, C=4.0, rating_range=(1.0, 5.0),
                  offset=3.2, item_bias=rng.normal(size=n_items) * 0.2 if biases else None,
                  bias_l2=3.0, cold_start=cold_start,
                  item_ids=[f"i{j:03d}" for j in range(n_items)], shrink_to=shrink_to)


def random_votes(rng: np.random.Generator, n: int, n_items: int = 40
                 ) -> tuple[np.ndarray, np.ndarray]:
    return rng.choice(n_items, n, replace=False), rng.integers(1, 6, n).astype(float)


def test_closed_form_is_the_inner_problem_of_one_row_with_the_item_side_fixed(assert_close):
    """(FI) against PARTIAL_DUAL.md's equations with rows and columns swapped: U' = B / sqrt(s)
    on the item spectrahedron, (U'_J U'_J^T + I/C) z = y solved densely, a = U'_J^T z / sqrt(s)."""
    fold_in = random_fold_in(0, biases=False)
    items, votes = random_votes(np.random.default_rng(1), 12)
    B, C = fold_in.column_factors, fold_in.C
    s = np.sum(np.linalg.svd(B, compute_uv=False) ** 2)  # ||W||_* of balanced factors
    assert_close(fold_in.trace_norm, s)
    U_J = B[items] / np.sqrt(s)
    y = votes - fold_in.offset
    z = np.linalg.solve(U_J @ U_J.T + np.eye(len(items)) / C, y)
    # and its Woodbury form, one r x r solve
    z_woodbury = C * y - C ** 2 * U_J @ np.linalg.solve(np.eye(B.shape[1]) + C * U_J.T @ U_J,
                                                         U_J.T @ y)
    assert_close(z_woodbury, z, ulps=64)
    factor, bias = fold_in.factor_and_bias(items, votes)
    assert bias == 0.0
    assert_close(factor, U_J.T @ z / np.sqrt(s), ulps=64)
    assert_close(fold_in.predict(factor, items), fold_in.offset + B[items] @ factor)


def test_fold_in_of_a_fitted_customer_gives_back_their_row(assert_close):
    """(FI) is the fit's optimality condition read row by row, so a customer folded in from
    their own training votes gets their fitted row back, to the certified gap."""
    rng = np.random.default_rng(3)
    d, T, rank = 40, 30, 3
    W = rng.normal(size=(d, rank)) @ rng.normal(size=(rank, T))
    mask = rng.random((d, T)) < 0.4
    Y = scipy.sparse.coo_matrix((W[mask] + 0.3 * rng.normal(size=mask.sum()),
                                 np.nonzero(mask)), shape=(d, T)).tocsr()
    model = PartialDual(C=2.0, rank=1, gap_tolerance=1e-12, max_iterations=500,
                        verbose=False).fit(Y)
    assert model.relative_gap_ < 1e-10
    fold_in = FoldIn(model.column_factors_, C=2.0, rating_range=(-np.inf, np.inf))
    A = model.row_factors_
    for row in range(d):
        items = Y[row].indices
        folded = fold_in.user_vector(items, Y[row].data)
        # Not exact only because the solver stops at a gap: W is optimal to ~sqrt(gap).
        np.testing.assert_allclose(folded, A[row], rtol=0, atol=1e-5 * np.abs(A).max())


def test_shrinking_to_the_cold_start_minimises_the_same_ridge_centred_there(assert_close):
    """shrink_to="cold_start": (a, b_c) minimise C/2 ||y - b_c - B_J a||^2 + s/2 ||a - a0||^2
    (b_c by its own ridge first, as the bias model does), so the gradient in a vanishes, and
    no votes give the cold start itself, continuously."""
    fold_in = random_fold_in(2, shrink_to="cold_start")
    a0, b0 = fold_in.prior()
    np.testing.assert_array_equal(a0, fold_in.cold_start[:5])
    assert b0 == fold_in.cold_start[5]
    items, votes = random_votes(np.random.default_rng(3), 7)
    factor, bias = fold_in.factor_and_bias(items, votes)
    y = votes - fold_in.offset - fold_in.item_bias[items] - bias
    B_J = fold_in.column_factors[items]
    # Stationarity: the loss's pull C B_J^T (y - B_J a) balances the ridge's s (a - a0); a
    # solve of a well-conditioned 5 x 5 system, so a few hundred ulps of the terms.
    assert_close(fold_in.C * B_J.T @ (y - B_J @ factor), fold_in.trace_norm * (factor - a0),
                 ulps=256, scale=fold_in.C * np.abs(B_J).sum() * np.abs(y).max())
    assert_close(bias, b0 + np.sum(votes - fold_in.offset - fold_in.item_bias[items] - b0)
                 / (7 + fold_in.bias_l2))
    empty_factor, empty_bias = fold_in.factor_and_bias([], [])
    np.testing.assert_array_equal(fold_in.vector(empty_factor, empty_bias), fold_in.cold_start)
    with pytest.raises(ValueError, match="`shrink_to` must be one of"):
        random_fold_in(2, shrink_to="mean")


def test_no_votes_give_the_cold_start_vector_and_bad_votes_are_named():
    fold_in = random_fold_in(0)
    np.testing.assert_array_equal(fold_in.user_vector([], []), fold_in.cold_start)
    zero = FoldIn(fold_in.column_factors, C=1.0, rating_range=(1, 5), item_bias=np.zeros(40))
    np.testing.assert_array_equal(zero.user_vector([], []), [0, 0, 0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match=r"vote value 6\.0 is outside the rating range \[1, 5\]"):
        fold_in.user_vector([1, 2], [5, 6])
    with pytest.raises(ValueError, match="vote value nan"):
        fold_in.user_vector(["i001"], [np.nan])
    with pytest.raises(ValueError, match="unknown item 'i999'"):
        fold_in.user_vector(["i001", "i999"], [5, 4])
    with pytest.raises(ValueError, match="unknown item index 40"):
        fold_in.user_vector([40], [5])
    with pytest.raises(ValueError, match="one vote per item"):
        fold_in.user_vector([1, 2], [5])
    by_id = fold_in.user_vector(["i007", "i002"], [5, 1])
    np.testing.assert_array_equal(by_id, fold_in.user_vector([7, 2], [5, 1]))


def _tolerance(fold_in: FoldIn, items: np.ndarray, eps: float) -> float:
    """Rounding bound of (FI): the solve amplifies the inputs' rounding by the Gram matrix's
    condition number (at most 1 + ||B_J||^2 / ridge); a few dozen ulps of that, of the largest
    entry of the result."""
    B_J = fold_in.column_factors[items]
    condition = 1 + np.linalg.norm(B_J, 2) ** 2 / fold_in.ridge
    return 64 * condition * eps


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
@pytest.mark.parametrize("biases", [True, False])
@pytest.mark.parametrize("shrink_to", ["zero", "cold_start"])
def test_graph_fold_in_equals_numpy_on_random_votes_of_any_length(dtype, biases, shrink_to):
    fold_in = random_fold_in(4, biases=biases, shrink_to=shrink_to)
    graph = FoldInGraph(fold_in, dtype)
    serve = tf.function(graph.user_vector, input_signature=[
        tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], dtype)])
    by_id = tf.function(graph.user_vector_by_id, input_signature=[
        tf.TensorSpec([None], tf.string), tf.TensorSpec([None], dtype)])
    rng = np.random.default_rng(5)
    eps = np.finfo(dtype.as_numpy_dtype).eps
    for n in (0, 1, 3, 5, 12, 40):
        items, votes = random_votes(rng, n)
        expected = fold_in.user_vector(items, votes)
        actual = serve(tf.constant(items, tf.int64), tf.constant(votes, dtype)).numpy()
        scale = np.abs(expected).max()
        np.testing.assert_allclose(actual, expected, rtol=0,
                                   atol=_tolerance(fold_in, items, eps) * scale)
        ids = tf.constant(fold_in.item_ids[items] if n else np.zeros(0, str), tf.string)
        np.testing.assert_array_equal(by_id(ids, tf.constant(votes, dtype)).numpy(), actual)
    # One trace serves every length.
    assert serve.experimental_get_tracing_count() == 1


def test_graph_fold_in_refuses_bad_votes_with_invalid_argument_naming_them():
    graph = FoldInGraph(random_fold_in(0))
    serve = tf.function(graph.user_vector, input_signature=[
        tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32)])
    by_id = tf.function(graph.user_vector_by_id, input_signature=[
        tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"vote value\(s\).*7.*outside"):
        serve(tf.constant([1, 2], tf.int64), tf.constant([5.0, 7.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"unknown item index\(es\).*41"):
        serve(tf.constant([41, 2], tf.int64), tf.constant([5.0, 4.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"unknown item id\(s\).*nope"):
        by_id(tf.constant(["i001", "nope"]), tf.constant([5.0, 4.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one vote per item"):
        serve(tf.constant([1, 2], tf.int64), tf.constant([5.0]))


def test_saved_fold_in_answers_in_a_fresh_process_without_project_code(tmp_path):
    """What a serving signature will call: the module saved with a variable-length signature,
    loaded by TensorFlow alone, answers as the NumPy fold-in and keeps its input checks."""
    import json
    import subprocess
    import sys

    fold_in = random_fold_in(6)
    graph = FoldInGraph(fold_in, tf.float32)
    graph.serve = tf.function(
        lambda item_ids, votes: {"user_vector": graph.user_vector_by_id(item_ids, votes)},
        input_signature=[tf.TensorSpec([None], tf.string, name="item_ids"),
                         tf.TensorSpec([None], tf.float32, name="votes")])
    tf.saved_model.save(graph, str(tmp_path / "fold_in"),
                        signatures={"fold_in": graph.serve.get_concrete_function()})
    items, votes = ["i003", "i010", "i022"], [5.0, 1.0, 4.0]
    script = f"""
import json, sys
import tensorflow as tf
fold_in = tf.saved_model.load({str(tmp_path / "fold_in")!r}).signatures["fold_in"]
answer = fold_in(item_ids=tf.constant({items!r}), votes=tf.constant({votes!r}))
empty = fold_in(item_ids=tf.constant([], tf.string), votes=tf.constant([], tf.float32))
try:
    fold_in(item_ids=tf.constant(["i003"]), votes=tf.constant([9.0]))
    error = ""
except tf.errors.InvalidArgumentError as caught:
    error = caught.message
assert not any(name.startswith("tfrec_fashion") for name in sys.modules)
print(json.dumps({{"vector": answer["user_vector"].numpy().tolist(),
                   "empty": empty["user_vector"].numpy().tolist(), "error": error}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = fold_in.user_vector(items, votes)
    np.testing.assert_allclose(result["vector"], expected, rtol=0,
                               atol=_tolerance(fold_in, fold_in.item_indices(items),
                                               np.finfo(np.float32).eps) * np.abs(expected).max())
    np.testing.assert_allclose(result["empty"], fold_in.cold_start, rtol=1e-7)
    assert "outside the rating range" in result["error"] and "9" in result["error"]
