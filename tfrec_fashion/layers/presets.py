"""Named configurations (KerasHub presets) for the project's image networks.

A network class mixes in ``Presets`` and sets ``PRESETS`` (name -> constructor arguments, nothing
else) and ``FAMILY`` (its name in errors); its ``get_config`` returns constructor arguments, so
``from_config`` is the constructor.
"""

from __future__ import annotations

from typing import Any


class Presets:
    """``from_preset`` over the class's ``PRESETS``, ``from_config`` from constructor arguments."""

    PRESETS: dict[str, dict[str, Any]] = {}
    FAMILY = "network"  # named in the unknown-preset error

    @classmethod
    def from_preset(cls, preset: str, **overrides):
        """Builds a named configuration of ``PRESETS``; ``overrides`` replace its arguments."""
        if preset not in cls.PRESETS:
            raise ValueError(f"Unknown {cls.FAMILY} preset; known: {sorted(cls.PRESETS)}. "
                             f"Received: preset={preset!r}")
        return cls(**{**cls.PRESETS[preset], **overrides})

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        return cls(**config)
