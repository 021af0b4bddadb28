"""Checks of plain parameter values, importable without pydantic models (cheap at DAG parse time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from airflow_provider_mediapocket.exceptions import MediaPocketValidationError

#: The problem of a keyword the call does not take.
NOT_A_PARAMETER = "is not a parameter of this call"

#: What the parameters checked in the current block are part of (see :func:`parameters_of`).
_WITHIN: ContextVar[str] = ContextVar("mediapocket_parameters_within", default="")


@contextmanager
def parameters_of(owner: str) -> Iterator[None]:
    """Name every parameter rejected inside the block as a part of ``owner``: with ``items[3]``, a bad
    ``title`` is reported as ``items[3].title`` (a list item of an operator's parameter)."""
    token = _WITHIN.set(owner)
    try:
        yield
    finally:
        _WITHIN.reset(token)


def parameter(name: str) -> str:
    """``name`` as an error names it: ``<owner>.<name>`` inside :func:`parameters_of`."""
    owner = _WITHIN.get()
    return f"{owner}.{name}" if owner and name else (owner or name)


def invalid(name: str, problem: str) -> MediaPocketValidationError:
    """The error for parameter ``name`` (named as :func:`parameter` says) and its problem."""
    return MediaPocketValidationError(f"Invalid parameter '{parameter(name)}': {problem}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def exactly_one(**values: Any) -> str:
    """The name of the one parameter given (neither None nor ``""``, e.g. a template that rendered empty);
    an error naming all of them, with their values, when none or several are given."""
    given = [name for name, value in values.items() if value not in (None, "")]
    if len(given) != 1:
        names = " and ".join(f"'{parameter(name)}'" for name in values)
        got = ", ".join(f"{name}={_short(value)}" for name, value in values.items())
        raise MediaPocketValidationError(f"Invalid parameters {names}: give exactly one (got {got})")
    return given[0]


def check_id(name: str, value: Any) -> str:
    """An id for a URL path: a non-empty string or a non-negative int, returned as a string."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid(name, f"must be a non-empty string or an integer (got {_short(value)})")
    text = str(value).strip()
    if not text:
        raise invalid(name, "must not be empty")
    if isinstance(value, int) and value < 0:
        raise invalid(name, f"must not be negative (got {value})")
    return text
