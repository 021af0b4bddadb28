"""Media Pocket objects as Airflow Assets: the ``mediapocket`` URI scheme and the events the operators emit.

URIs (registered under ``asset-uris`` in the provider info, so Airflow normalises and checks them):

* ``mediapocket://<host>/assets/<id>``: one Media Pocket asset;
* ``mediapocket://<host>/projects/<id>``: one project.

``<host>`` is the host of the connection's Base URL (lower case, with its port when the Base URL names one
that is not the scheme's default): ``https://tryme.mediapocket.fi`` gives ``tryme.mediapocket.fi``.

The create and ingest operators emit events for what they created or changed, once the task succeeded:

* through an :class:`~airflow.sdk.AssetAlias` in the task's ``outlets``: one event per Media Pocket asset on
  ``mediapocket://<host>/assets/<id>`` and, when the asset is in a project, one on
  ``mediapocket://<host>/projects/<id>``; so a DAG scheduled on the project's URI runs after an ingest into it
  (the project is known only at run time: an alias is how a task names such an asset);
* on a ``mediapocket://`` :class:`~airflow.sdk.Asset` declared in ``outlets`` whose URI is what the task
  created or changed: that outlet's event carries the extra (Airflow makes one event per declared asset).

The extra of an asset's event: ``id``, ``external_id``, ``media_type``, ``checksum`` (the MD5 of the original
file, ``md5_sum`` in the API), ``project_id``, ``title`` (where known), plus ``status`` (``created`` or
``existing``) from the bulk ingest and ``dag_action_name``, ``dag_action_run_id``, ``dag_action_status`` from
a DAG action run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import Asset

SCHEME = "mediapocket"
KINDS = ("assets", "projects")
_PATH = re.compile(r"/(assets|projects)/([^/]+)")
_DEFAULT_PORTS = {"http": 80, "https": 443}

__all__ = [
    "KINDS",
    "SCHEME",
    "AssetChange",
    "asset_uri",
    "convert_asset_to_openlineage",
    "create_asset",
    "host_of",
    "sanitize_uri",
]


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Normalise a ``mediapocket://`` URI (Airflow's ``asset-uris`` handler).

    Airflow has already lower-cased the scheme, dropped user info, the fragment and trailing slashes. This
    lower-cases the host, drops the query string (an id names the object) and accepts only
    ``/assets/<id>`` and ``/projects/<id>``; anything else is a ``ValueError`` naming the URI's problem.
    """
    if not uri.netloc:
        raise ValueError(
            "A mediapocket:// asset URI needs the Media Pocket host, e.g. "
            "mediapocket://tryme.mediapocket.fi/assets/<id>"
        )
    match = _PATH.fullmatch(uri.path)
    if match is None or not match.group(2).strip():
        raise ValueError(
            f"A mediapocket:// asset URI must be mediapocket://<host>/assets/<id> or "
            f"mediapocket://<host>/projects/<id> (got path {uri.path!r})"
        )
    return uri._replace(netloc=uri.netloc.lower(), path=f"/{match.group(1)}/{match.group(2).strip()}", query="")


def host_of(base_url: str) -> str:
    """The ``<host>`` of the URIs of a connection's Base URL: lower case, port kept unless it is the default."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _target(asset_id: Any, project_id: Any) -> tuple[str, str]:
    """The URI's path segment (one of :data:`KINDS`) and the checked id."""
    if (asset_id is None) == (project_id is None):
        raise ValueError("Give exactly one of asset_id and project_id")
    name, kind, value = ("asset_id", "assets", asset_id) if asset_id is not None else ("project_id", "projects",
                                                                                      project_id)
    text = str(value).strip()
    if not text or "/" in text:
        raise ValueError(f"Invalid {name} {value!r}: must be a non-empty id without '/'")
    return kind, text


def asset_uri(host: str, *, asset_id: Any = None, project_id: Any = None) -> str:
    """``mediapocket://<host>/assets/<asset_id>`` or ``mediapocket://<host>/projects/<project_id>``.

    :param host: the Media Pocket host (see :func:`host_of`), e.g. ``tryme.mediapocket.fi``.
    :param asset_id: a Media Pocket asset's id; or
    :param project_id: a project's id (exactly one of the two).
    """
    kind, value = _target(asset_id, project_id)
    if not host or "/" in host:
        raise ValueError(f"Invalid host {host!r}: give the Media Pocket host, e.g. tryme.mediapocket.fi")
    return f"{SCHEME}://{host.lower()}/{kind}/{value}"


def create_asset(
    *, host: str, asset_id: Any = None, project_id: Any = None, extra: dict[str, Any] | None = None
) -> Asset:
    """The Airflow Asset of a Media Pocket asset or project (Airflow's ``asset-uris`` factory).

    :param host: the Media Pocket host, e.g. ``tryme.mediapocket.fi``.
    :param asset_id: a Media Pocket asset's id; or
    :param project_id: a project's id (exactly one of the two).
    :param extra: the Asset's ``extra``.

    Its name is its URI, like ``Asset(uri=...)``: a DAG scheduled on ``Asset("mediapocket://...")`` and the
    operators' events name the same Airflow asset.
    """
    from airflow.sdk import Asset

    uri = asset_uri(host, asset_id=asset_id, project_id=project_id)
    return Asset(uri=uri, extra=extra)


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """An Airflow Asset with a ``mediapocket://`` URI as an OpenLineage dataset (Airflow's
    ``to_openlineage_converter``): namespace ``mediapocket://<host>``, name ``assets/<id>`` or
    ``projects/<id>``, as the operators' own lineage names them."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = sanitize_uri(urlsplit(asset.uri))
    return Dataset(namespace=f"{SCHEME}://{parts.netloc}", name=parts.path.lstrip("/"))


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class AssetChange:
    """One Media Pocket object a task created or changed: an asset (``asset_id``, with its project when
    known) or a project (``asset_id`` None). ``extra`` is the event's extra (plain JSON)."""

    asset_id: str | None
    project_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def uris(self, host: str) -> list[str]:
        """The URIs this change is an event of: the asset's, then its project's."""
        uris = [asset_uri(host, asset_id=self.asset_id)] if self.asset_id is not None else []
        if self.project_id is not None:
            uris.append(asset_uri(host, project_id=self.project_id))
        return uris


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def asset_extra(asset: Mapping[str, Any], project_id: Any = None, **more: Any) -> dict[str, Any]:
    """The event extra of a Media Pocket asset (an API asset as JSON): the fields that are known."""
    extra = {
        "id": _text(asset.get("id")),
        "external_id": _text(asset.get("external_id")),
        "media_type": _text(asset.get("media_type")),
        "checksum": _text(asset.get("md5_sum")),
        "project_id": _text(asset.get("project_id")) or _text(project_id),
        "title": _text(asset.get("title")),
        **more,
    }
    return {key: value for key, value in extra.items() if value is not None}


def _asset_change(asset: Mapping[str, Any], project_id: Any = None, **more: Any) -> AssetChange:
    extra = asset_extra(asset, project_id, **more)
    return AssetChange(extra["id"], extra.get("project_id"), extra)


def changes_of(operator: Any, result: Any) -> list[AssetChange]:
    """What a finished Media Pocket operator created or changed, read from its return value and parameters.

    Operators that change nothing in Media Pocket (and sensors) give an empty list.
    """
    from airflow_provider_mediapocket.operators import mediapocket as ops

    if isinstance(operator, ops.MediaPocketBulkIngestOperator):
        return [
            _asset_change({"id": item["asset_id"], "external_id": item.get("external_id")}, operator.project_id,
                          status=item.get("status"))
            for item in result or [] if isinstance(item, Mapping) and item.get("asset_id")
            and item.get("status") in ("created", "existing")
        ]
    if isinstance(operator, (ops.MediaPocketCreateAssetOperator, ops.MediaPocketUpdateAssetOperator)):
        return [_asset_change(result, getattr(operator, "project_id", None))] if isinstance(result, Mapping) else []
    if isinstance(operator, (ops.MediaPocketAddMediaOperator, ops.MediaPocketAssignAssetOperator)):
        return [_asset_change({"id": result}, getattr(operator, "project_id", None))] if result else []
    if isinstance(operator, ops.MediaPocketCreateProjectOperator) and isinstance(result, Mapping):
        extra = {"project_id": _text(result.get("id")), "external_id": _text(result.get("external_id")),
                 "title": _text(result.get("title"))}
        return [AssetChange(None, str(result["id"]), {k: v for k, v in extra.items() if v is not None})]
    if isinstance(operator, ops.MediaPocketStartDagActionOperator) and isinstance(result, Mapping):
        if not operator.wait_for_completion:
            return []  # a run that was only started has changed nothing yet
        action = result.get("dag_action") or {}
        return [_asset_change(
            {"id": operator.asset_id}, None, dag_action_name=_text(action.get("name")),
            dag_action_run_id=_text(result.get("id")), dag_action_status=_text(result.get("status")),
        )]
    return []


def _is_alias(outlet: Any) -> bool:
    from airflow.sdk import AssetAlias

    return isinstance(outlet, AssetAlias)


def emit_events(outlet_events: Any, outlets: Sequence[Any], host: str, changes: Iterable[AssetChange]) -> int:
    """Record the events of ``changes`` in a task's ``outlet_events``; returns how many were recorded.

    :param outlet_events: the task context's ``outlet_events``.
    :param outlets: the task's ``outlets``: its AssetAliases get one event per change and URI; its
        ``mediapocket://`` Assets that a change names get that change's extra (one change), or
        ``{"assets": [extra, ...]}`` (several, e.g. a bulk ingest into a declared project).
    :param host: the Media Pocket host of the task's connection.
    :param changes: what the task created or changed.
    """
    from airflow.sdk import Asset

    changes = list(changes)
    aliases = [outlet for outlet in outlets if _is_alias(outlet)]
    declared = {outlet.uri: outlet for outlet in outlets if isinstance(outlet, Asset)
                and outlet.uri.startswith(f"{SCHEME}://")}
    count = 0
    for alias in aliases:
        accessor = outlet_events[alias]
        for change in changes:
            for uri in change.uris(host):
                accessor.add(Asset(uri=uri), extra=dict(change.extra))
                count += 1
    for uri, outlet in declared.items():
        extras = [dict(change.extra) for change in changes if uri in change.uris(host)]
        if extras:
            outlet_events[outlet].extra.update(extras[0] if len(extras) == 1 else {"assets": extras})
            count += 1
    return count


@dataclass(frozen=True)
class Outcome:
    """What a finished task did, kept on the operator for its OpenLineage facets."""

    host: str
    result: Any
    changes: list[AssetChange]


def record_outcome(operator: Any, context: Any, result: Any) -> None:
    """After a Media Pocket task's ``execute`` (or ``execute_complete``) returned: emit the asset events of
    what it created or changed and keep the outcome for its OpenLineage facets. No request is sent (the
    connection's settings were read when the task used it)."""
    changes = changes_of(operator, result)
    if not changes and "hook" not in operator.__dict__:
        return  # nothing changed and Media Pocket was not asked (e.g. the task deferred first)
    host = host_of(operator.hook.get_settings().base_url)
    operator._mediapocket_outcome = Outcome(host, result, changes)
    outlet_events = context.get("outlet_events") if isinstance(context, Mapping) else None
    if changes and outlet_events is not None:
        count = emit_events(outlet_events, list(getattr(operator, "outlets", None) or []), host, changes)
        if count:
            operator.log.info("Recorded %d Media Pocket asset event(s) for the task's outlets", count)
