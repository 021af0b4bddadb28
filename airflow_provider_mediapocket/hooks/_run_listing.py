"""An asset's DAG action runs as one listing answered them, decoded lazily.

The API has no endpoint for one run: a run is found in its asset's listing, which grows without bound.
"""

from __future__ import annotations

import json
import re
from typing import Any

from airflow_provider_mediapocket.exceptions import MediaPocketBadResponseError, MediaPocketNotFoundError
from airflow_provider_mediapocket.models import DagActionRun

_JSON = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


class RunIndex:
    """The ``dag_action_runs`` array of a listing, kept as JSON text with the offset of each run by id.

    The API has no endpoint for one run and an asset's runs accumulate (thousands, megabytes of
    JSON). Decoding the array into thousands of dicts and validating every run into a model to pick
    one costs a hundred milliseconds or more on a triggerer's event loop, and what is decoded must
    then be traced by the garbage collector, whose full passes stall the loop again. Instead each run
    is decoded on its own to read its id and dropped at once; a run asked for is decoded again from
    its offset and validated alone.
    """

    def __init__(self, text: str, offsets: dict[str, int], count: int) -> None:
        self._text = text
        self._offsets = offsets
        self.count = count

    @classmethod
    def scan(cls, text: str, pos: int) -> tuple[RunIndex, int]:
        """Index the array that starts at ``text[pos]`` (``[``); returns it and the offset after ``]``."""
        offsets: dict[str, int] = {}
        count = 0
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):
            return cls(text, offsets, 0), pos + 1
        while True:
            run, end = _JSON.raw_decode(text, pos)
            if not isinstance(run, dict):
                raise TypeError(f"'dag_action_runs' item {count} is {type(run).__name__}, not an object")
            offsets.setdefault(str(run.get("id")), pos)  # the first of equal ids, as a scan would find
            count += 1
            pos = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith("]", pos):
                return cls(text, offsets, count), pos + 1
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]

    def __len__(self) -> int:
        return self.count

    def raw(self, run_id: str) -> dict[str, Any] | None:
        """The JSON object of run ``run_id``, or None."""
        pos = self._offsets.get(run_id)
        if pos is None:
            return None
        run: dict[str, Any] = _JSON.raw_decode(self._text, pos)[0]
        return run

    def ids(self) -> list[str]:
        return list(self._offsets)

    def __contains__(self, run_id: object) -> bool:
        return str(run_id) in self._offsets


def decode_run_listing(content: bytes) -> Any:
    """Decode ``{"dag_action_runs": [...], ...}`` with the array as a :class:`RunIndex`; other members,
    and any other shape, decode as ``json.loads`` would (so error bodies are seen as usual)."""
    text = content.decode(json.detect_encoding(content), "surrogatepass")  # as json.loads does
    pos = _SPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("{", pos):
        return json.loads(text)
    members: dict[str, Any] = {}
    pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("}", pos):
        return json.loads(text)
    while True:
        key, pos = _JSON.raw_decode(text, pos)
        if not isinstance(key, str):
            raise json.JSONDecodeError("Expecting property name", text, pos)
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        if key == "dag_action_runs" and text.startswith("[", pos):
            members[key], pos = RunIndex.scan(text, pos)
        else:
            members[key], pos = _JSON.raw_decode(text, pos)
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("}", pos):
            break
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos + 1:].strip(" \t\n\r"):
        raise json.JSONDecodeError("Extra data", text, pos + 1)
    return members


class RunListing:
    """An asset's runs as one listing answered them; a run is validated only when asked for."""

    def __init__(self, runs: RunIndex, asset_id: str, listing_path: str) -> None:
        self.asset_id = asset_id
        self.path = listing_path
        self._runs = runs

    @classmethod
    def parse(cls, body: Any, asset_id: str, listing_path: str) -> RunListing:
        """The listing of a body decoded by :func:`decode_run_listing`; KeyError/TypeError for another shape."""
        runs = body["dag_action_runs"]
        if not isinstance(runs, RunIndex):
            raise TypeError(f"'dag_action_runs' is {type(runs).__name__}, not a list")
        return cls(runs, asset_id, listing_path)

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def get(self, run_id: str) -> DagActionRun | None:
        """Run ``run_id`` (compared as a string) validated, or None when the listing does not hold it."""
        item = self._runs.raw(str(run_id))
        if item is None:
            return None
        try:
            return DagActionRun.model_validate(item)
        except ValueError as exc:  # pydantic's ValidationError: the body is not what the API promises
            raise MediaPocketBadResponseError(
                f"Media Pocket GET {self.path} answered HTTP 200 with a body of an unexpected shape: "
                f"run {run_id}: {type(exc).__name__}: {str(exc)[:200]}",
                status=200, method="GET", path=self.path,
            ) from None

    def runs(self) -> list[DagActionRun]:
        """Every run, validated (costly for a long listing; not for an event loop)."""
        return [run for run in (self.get(run_id) for run_id in self._runs.ids()) if run is not None]


def find_run(runs: RunListing, run_id: str) -> DagActionRun:
    """The run ``run_id`` (compared as strings) in the listing, or MediaPocketNotFoundError."""
    run = runs.get(run_id)
    if run is None:
        raise MediaPocketNotFoundError(
            f"DAG action run {run_id} not found among the {len(runs)} runs of asset {runs.asset_id}",
            status=404, method="GET", path=runs.path,
        )
    return run
