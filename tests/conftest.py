"""Shared test set-up: Keras 2 before TensorFlow loads, the real-data skip-or-fail rule, and the
one float comparison (``assert_close``) whose tolerance scales with magnitude and dtype."""

import os

# Before anything imports TensorFlow: TFRS needs Keras 2 (tf_keras).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tfrec_fashion.errors import MissingDataError  # noqa: E402


def load_real_data(loader, *args, **kwargs):
    """Calls ``loader``; when its data is missing, skips the test, or fails it under
    ``TFREC_FASHION_REQUIRE_DATA=1`` (set by CI, which installs the data first)."""
    try:
        return loader(*args, **kwargs)
    except MissingDataError as error:
        if os.environ.get("TFREC_FASHION_REQUIRE_DATA") == "1":
            pytest.fail(f"TFREC_FASHION_REQUIRE_DATA=1 but real data is missing: {error}")
        pytest.skip(f"real data not installed (`make data`): {error}")


@pytest.fixture
def real_data():
    """The ``load_real_data`` function, for tests that read real offline datasets."""
    return load_real_data


def assert_close(actual, expected, *, ulps: float = 16, scale: float | None = None,
                 dtype=None, err_msg: str = "") -> None:
    """Asserts that two float results agree to within the rounding error of their computation:
    elementwise ``|actual - expected| <= ulps * eps * (|expected| + scale)``.

    Args:
        actual, expected: arrays (or tensors, or scalars) of the same shape; infinities must
            match exactly and NaN must face NaN.
        ulps: the budget in units of ``eps`` that the computation justifies (see below).
        scale: the magnitude the rounding error is relative to; default the largest finite
            ``|expected|``. Pass it where the entries are small by cancellation (a residual, an
            antisymmetric part, a projection that should vanish): give the size of the terms
            that cancelled, e.g. ``norm(a) * norm(b)`` for the entries of ``a.T @ b``.
        dtype: whose ``eps`` to use; default the coarser float dtype of the two sides (a
            float32 result compared with a float64 NumPy reference is float32-accurate).
        err_msg: printed with a failure, after the tolerance used.

    Why this form. Float rounding is relative: each operation is exact to half an ulp of its
    result, ``eps / 2`` (float32 ``eps`` = 2**-23 ~ 1.2e-7, float64 2**-52 ~ 2.2e-16). A sum or
    dot product of n terms is exact to ``(n - 1) eps sum|terms|``, so its error is relative to
    the size of the terms, not of the result: an entry that cancels to near 0 carries the error
    of the array's scale. Hence ``eps`` times ``|expected| + scale``, with the array's largest
    entry as the default scale. An absolute tolerance alone (``atol=1e-5``) is right at one
    magnitude only: too tight for a score of 3.25, too loose for one of 1e-4.

    Why a budget in ulps. Two paths that compute the same function in a different order (a
    batch of 4 against one of 64, a SavedModel graph with fused ops against eager Keras, an
    AVX-512 CPU against an AVX2 one, OpenBLAS against MKL) round differently: oneDNN, Eigen and
    BLAS choose blocking and vector width by shape and by CPU, which reorders every sum. The
    budget states how much reordering the computation allows:

    - same ops, same shapes, one process: bitwise equal in practice; a few ulps for fused or
      reassociated ops (the 16 default covers a handful of elementwise ops and short sums);
    - sums reordered: up to ``2 (n - 1)`` ulps of ``sum|terms|`` for n terms (the bound above,
      once per side); typically ``sqrt(n)``;
    - chains (a CNN, a solver): the per-step budget times the depth, amplified by any division
      by a small quantity (a standardisation by a small spread, an ill-conditioned solve).

    A call site that needs more than a few ulps says why in a comment. Where a test means "the
    same function", it computes its reference along the same path (same batch size, same ops)
    rather than asking for a larger budget. The budget is capped at a relative 1e-4 (~840 ulps
    in float32): past that the two sides are different computations, not differently rounded
    ones, and the check would hide real errors (a relative 1e-3 in float32 always fails).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    if dtype is None:
        floats = [a.dtype for a in (actual, expected) if np.issubdtype(a.dtype, np.floating)]
        eps = max((np.finfo(d).eps for d in floats), default=np.finfo(np.float64).eps)
    else:
        eps = np.finfo(dtype).eps
    relative = float(ulps) * float(eps)
    if not 0 < relative <= 1e-4:
        raise ValueError(f"`ulps` must give a relative tolerance in (0, 1e-4]: more is not "
                         f"rounding. Received: ulps={ulps} (relative {relative:.2g})")
    if scale is None:
        finite = np.abs(expected[np.isfinite(expected)])
        scale = float(finite.max()) if finite.size else 0.0
        if scale == 0.0:
            raise ValueError("`expected` has no nonzero finite entry, so it gives no scale: "
                             "pass `scale` (the size of the terms that cancelled to 0)")
    np.testing.assert_allclose(
        actual, expected, rtol=relative, atol=relative * scale, equal_nan=True,
        err_msg=f"{ulps} ulps of eps={eps:.3g} at scale {scale:.4g}. {err_msg}".rstrip())


@pytest.fixture(name="assert_close", scope="session")
def _assert_close_fixture():
    """The ``assert_close`` function, for every test comparing float results."""
    return assert_close


def _write_movielens(folder, name: str, half_stars: bool = False):
    """Writes a tiny MovieLens rating file ``name`` (u.data, ratings.dat or ratings.csv) into
    ``folder`` in the exact public layout and returns its path: 8 users x 12 movies, 8 ratings
    each at increasing timestamps, every user with 4 ratings >= 4 (so ``min_rating: 4`` leaves
    each a training, a validation and a test item); ``half_stars`` adds x.5 ratings (ML-10M,
    ml-latest)."""
    from pathlib import Path

    from tfrec_fashion.data.movielens import RATING_FILES

    layout = RATING_FILES[name]
    rows = []
    for user in range(1, 9):
        for k in range(8):
            movie = 100 + (user * 5 + k * 7) % 12
            rating = (5, 4, 4.5 if half_stars else 4, 5, 2, 1, 3, 2.5 if half_stars else 3)[k]
            rows.append((user, movie, f"{rating:g}", 880000000 + 1000 * user + 10 * k))
    lines = [layout.separator.join(str(v) for v in row) for row in rows]
    header = [layout.separator.join(layout.header)] if layout.header else []
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header + lines) + "\n")
    return path


@pytest.fixture
def write_movielens():
    """``write_movielens(folder, name, half_stars=False)`` -> a tiny MovieLens rating file."""
    return _write_movielens
