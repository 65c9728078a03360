"""Shared test set-up: Keras 2 before TensorFlow loads, and the real-data skip-or-fail rule."""

import os

# Before anything imports TensorFlow: TFRS needs Keras 2 (tf_keras).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
