"""The one rule for a number read from outside (model.json, node parameters, service fields, poses):
the right type (a bool is not a number, a string is not either), finite, in a documented range; else
a NumberError naming the field. Plain Python + numpy: the training side imports it too."""

from __future__ import annotations

import math

import numpy as np


class NumberError(ValueError):
    """A number from outside is of the wrong type, not finite or out of range; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def is_number(value: object) -> bool:
    """int or float (Python or numpy), and not a bool (json's `true` must not read as 1)."""
    numeric = isinstance(value, int | float | np.integer | np.floating)
    return numeric and not isinstance(value, bool | np.bool_)


def is_integer(value: object) -> bool:
    return not isinstance(value, bool | np.bool_) and isinstance(value, int | np.integer)


def checked_number(
    field: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    low_open: bool = False,
) -> float | int:
    """`value` as a Python int / float when it is a finite number in [low, high] ((low, high] with
    `low_open`), else NumberError saying what was wanted and what came."""
    kind = "an integer" if integer else "a number"
    if not (is_integer(value) if integer else is_number(value)):
        raise NumberError(field, f"{field} must be {kind}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise NumberError(field, f"{field} must be finite, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        opening = "(" if low_open or low is None else "["
        brackets = f"{opening}{lo}, {hi}" + ("]" if high is not None else ")")
        raise NumberError(field, f"{field} must be {kind} in {brackets}, got {value!r}")
    return int(value) if integer else float(value)
