"""Argument checks shared by stage constructors (config values are already range-checked; these guard direct use)."""

from __future__ import annotations

import math

import numpy as np

from realtime.errors import ConfigError


def check_fraction(name: str, value: float, allow_zero: bool) -> float:
    """``value`` as a float in [0, 1] (``allow_zero``) or (0, 1]; :class:`ConfigError` naming ``name`` otherwise."""
    interval = f"{'[0' if allow_zero else '(0'}, 1]"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}") from None
    low_ok = number >= 0 if allow_zero else number > 0
    if not math.isfinite(number) or not low_ok or number > 1:
        raise ConfigError(f"{name} must be in {interval}, got {value!r}")
    return number


def check_count(name: str, value: int, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools refused); :class:`ConfigError` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
