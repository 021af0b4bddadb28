"""The metadata fields every asset and project carries, named once (cheap to import at DAG parse time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The metadata of an asset or project, as the create and update endpoints take it.
METADATA = ("title", "description", "category", "tags", "external_id")


def metadata_of(source: Any) -> dict[str, Any]:
    """The :data:`METADATA` of an operator (its attributes) or of an item (a mapping; missing is None)."""
    if isinstance(source, Mapping):
        return {name: source.get(name) for name in METADATA}
    return {name: getattr(source, name) for name in METADATA}
