"""Errors the library raises on bad input, each naming what was wrong and how to fix it.

They subclass the built-in exception a caller would expect (``ValueError``, ``FileNotFoundError``)
so generic handlers keep working, and the CLI turns any of them into a one-line message.
"""


class TfrecFashionError(Exception):
    """Base class of every error the project raises on purpose (the CLI prints these in one line)."""


class ConfigError(TfrecFashionError, ValueError):
    """A config file or a ``--set`` override is malformed: unknown key, wrong type, bad value."""


class MissingDataError(TfrecFashionError, FileNotFoundError):
    """A dataset, wheel or file is not where it should be; the message says which command installs it."""


class DataError(TfrecFashionError, ValueError):
    """Data on disk is present but wrong: a corrupt image, a rating out of range, duplicate ids."""
