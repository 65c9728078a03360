"""The suite's one float comparison (``assert_close`` in conftest.py): a few ulps pass at any
magnitude, a real difference fails, the tolerance follows the dtype and the array's scale."""

import numpy as np
import pytest


def ulps_away(x, n: int):
    """``x`` moved ``n`` representable values up, in its own dtype."""
    x = np.asarray(x)
    for _ in range(n):
        x = np.nextafter(x, np.asarray(np.inf, x.dtype))
    return x


def test_a_few_ulps_pass_at_large_magnitude_where_an_absolute_tolerance_fails(assert_close):
    expected = np.array([3.25, -1.5e3, 7.0e5], np.float32)
    actual = ulps_away(expected, 4)
    assert_close(actual, expected)
    # The same 4 ulps at 7e5 are 0.25: any fixed atol is wrong at one magnitude or another.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_a_relative_1e_3_error_fails_in_float32_even_at_the_largest_budget(assert_close):
    expected = np.linspace(-4.0, 4.0, 40, dtype=np.float32)
    actual = expected.copy()
    actual[7] *= 1 + 1e-3
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 40"):
        assert_close(actual, expected, ulps=838)  # the most the cap allows in float32
    with pytest.raises(ValueError, match=r"relative tolerance in \(0, 1e-4\]"):
        assert_close(actual, expected, ulps=8400)  # 1e-3 relative: no longer rounding


def test_the_budget_follows_the_coarser_dtype(assert_close):
    expected = np.array([1.0, 2.0, 3.0])
    off = expected * (1 + 1e-9)  # ~4.5e6 float64 ulps, under 0.01 float32 ulp
    with pytest.raises(AssertionError, match="eps=2.22e-16"):
        assert_close(off, expected)
    assert_close(off.astype(np.float32), expected)  # a float32 result is float32-accurate
    assert_close(ulps_away(expected, 8), expected)


def test_entries_small_by_cancellation_are_judged_at_the_arrays_scale(assert_close):
    expected = np.array([1000.0, 1e-3], np.float32)
    actual = np.array([1000.0, 1e-3 + 1e-4], np.float32)  # 1e-4 off: 0.8 ulp of 1000
    assert_close(actual, expected)
    with pytest.raises(AssertionError):
        assert_close(actual, expected, scale=0.0)  # purely relative: 10% off
    with pytest.raises(ValueError, match="pass `scale`"):
        assert_close(np.zeros(3), np.zeros(3))
    assert_close(np.array([1e-10, 0.0]), np.zeros(2), scale=1e5)  # terms of 1e5 cancelled


def test_infinities_must_match_and_nan_must_face_nan(assert_close):
    expected = np.array([-np.inf, 2.0, np.nan], np.float32)
    assert_close(expected.copy(), expected)
    with pytest.raises(AssertionError):
        assert_close(np.array([np.inf, 2.0, np.nan], np.float32), expected)
    with pytest.raises(AssertionError):
        assert_close(np.array([-np.inf, 2.0, 0.0], np.float32), expected)
