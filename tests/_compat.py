"""What the tests need to run on every Airflow 3.x the provider supports (``make compat``).

Airflow 3.3 logs through structlog, 3.0 to 3.2 partly through the standard library's logging (the
triggers' and operators' ``self.log``); the serializer the triggerer uses moved from
``airflow.serialization.serde`` to ``airflow.sdk.serde``. Tests import these from here so that each
assertion means the same thing on every version.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import pytest
import structlog.testing
from packaging.version import Version

AIRFLOW_VERSION = Version(metadata.version("apache-airflow-core"))

try:
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow < 3.1
    from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]

__all__ = [
    "AIRFLOW_VERSION", "capture_logs", "deserialize", "lines_with_secret", "logged_lines", "requires_airflow",
    "serialize", "times_logged",
]


def requires_airflow(version: str, why: str) -> pytest.MarkDecorator:
    """Mark a test that checks a feature Airflow gained in ``version``; elsewhere it does not run, and
    ``make compat`` lists it by name with ``why`` as not applicable (never as a pass)."""
    return pytest.mark.skipif(Version(version) > AIRFLOW_VERSION, reason=f"needs Airflow {version}: {why}")


class _Collect(logging.Handler):
    def __init__(self, entries: list[dict[str, Any]]) -> None:
        super().__init__(logging.INFO)
        self.entries = entries

    def emit(self, record: logging.LogRecord) -> None:
        # The operators log as "airflow.task.operators.<class path>" (test subclasses included), the
        # rest under their module's name.
        if "airflow_provider_mediapocket" in record.name or record.name.startswith("airflow.task.operators."):
            self.entries.append({"event": record.getMessage(), "log_level": record.levelname.lower()})


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """structlog's ``capture_logs`` that also takes the provider's standard-library records at INFO and
    above, in the order logged (on 3.3 neither DEBUG nor Airflow's own lines, such as "Connection
    Retrieved", reach the capture either)."""
    with structlog.testing.capture_logs() as entries:
        handler = _Collect(entries)
        root = logging.getLogger()
        previous = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield entries
        finally:
            root.removeHandler(handler)
            root.setLevel(previous)


def logged_lines(output: str, text: str = "") -> list[str]:
    """The lines of a ``dag.test()`` run's output that contain ``text``, one per log record.

    Airflow 3.0's ``dag.test()`` prints each task log record twice, through two handlers with two
    time formats ("[2026-01-01 10:00:00,123]" and "[2026-01-01T10:00:00.123+0000]"), and a failed
    task's traceback with its local variables: only the lines of records in the second format are
    kept there, so a record logged once counts once on every version.
    """
    lines = [line for line in output.splitlines() if text in line]
    if Version("3.1") > AIRFLOW_VERSION:
        lines = [line for line in lines if re.match(r"\[\d{4}-\d\d-\d\dT", line)]
    return lines


def times_logged(output: str, text: str) -> int:
    """How many log records of a ``dag.test()`` run's output contain ``text`` (see :func:`logged_lines`)."""
    return len(logged_lines(output, text))


def lines_with_secret(output: str, secret: str) -> list[str]:
    """The lines of a ``dag.test()`` run's output that show ``secret``.

    Airflow 3.0's task supervisor logs the value of every secret a task registers for masking, at
    DEBUG ("Sending request msg=MaskSecret(value='...')"); that line is Airflow's own, fixed in 3.1,
    and is left out there. The README's support table tells 3.0 users to keep DEBUG logging off.
    """
    lines = [line for line in output.splitlines() if secret in line]
    if Version("3.1") > AIRFLOW_VERSION:
        lines = [line for line in lines if f"MaskSecret(value='{secret}'" not in line]
    return lines
