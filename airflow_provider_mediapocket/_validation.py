"""Checks of plain parameter values, importable without pydantic models (cheap at DAG parse time)."""

from __future__ import annotations

from typing import Any

from airflow_provider_mediapocket.exceptions import MediaPocketValidationError


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_id(name: str, value: Any) -> str:
    """An id for a URL path: a non-empty string or a non-negative int, returned as a string."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MediaPocketValidationError(
            f"Invalid parameter '{name}': must be a non-empty string or an integer (got {_short(value)})"
        )
    text = str(value).strip()
    if not text:
        raise MediaPocketValidationError(f"Invalid parameter '{name}': must not be empty")
    if isinstance(value, int) and value < 0:
        raise MediaPocketValidationError(f"Invalid parameter '{name}': must not be negative (got {value})")
    return text
