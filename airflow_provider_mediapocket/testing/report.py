"""The report of a deployment script: lines for people, facts for tests, both written at the end."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report", "finish"]


@dataclass
class Report:
    """What a script found: :attr:`lines` (printed) and :attr:`facts` (written as JSON for tests).

    :ivar title: names the script.
    """

    title: str
    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, line: str, **facts: Any) -> None:
        """Record one finding: ``line`` for people, ``facts`` (JSON-able) merged into :attr:`facts`.

        :param line: one line of the printed report.
        :param facts: machine-readable values (a test asserts on them).
        """
        self.lines.append(line)
        self.facts.update(facts)

    def as_dict(self, code: int, error: str | None = None) -> dict[str, Any]:
        """The JSON document: ``title``, ``result`` (``PASS``/``FAIL``), ``exit_code``, ``error``,
        ``facts``, ``lines``.

        :param code: the script's exit code.
        :param error: why it failed, if it did.
        """
        return {
            "title": self.title,
            "result": "PASS" if code == 0 else "FAIL",
            "exit_code": code,
            "error": error,
            "facts": self.facts,
            "lines": self.lines,
        }


def finish(
    report: Report,
    code: int,
    home: Path,
    *,
    keep_home: bool,
    path: Path | None = None,
    error: str | None = None,
) -> None:
    """Print the report and the result line, write it as JSON to ``path``, and remove the throwaway
    ``AIRFLOW_HOME`` unless asked to keep it.

    :param report: what the script found.
    :param code: its exit code.
    :param home: the throwaway ``AIRFLOW_HOME``.
    :param keep_home: keep ``home`` (its path is printed).
    :param path: where to write the JSON report (folders created); None writes none.
    :param error: why it failed, if it did.
    """
    print(f"\n===== {report.title} report =====")
    for line in report.lines:
        print(f"- {line}")
    print(f"RESULT: {'PASS' if code == 0 else 'FAIL'}", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.as_dict(code, error), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"report written to {path}", flush=True)
    if keep_home:
        print(f"AIRFLOW_HOME kept at {home}", flush=True)
    else:
        shutil.rmtree(home, ignore_errors=True)
