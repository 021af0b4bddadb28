"""OpenLineage facets of the Media Pocket operators (imported only by the OpenLineage provider's call).

Naming follows the OpenLineage spec (namespace = ``scheme://authority``, name = path):

* a source media URL ``https://user:pw@host:8443/path/file.mp4?signature`` is namespace
  ``https://host:8443``, name ``/path/file.mp4``: user info, query string and fragment are never kept
  (a presigned URL's query string is a credential);
* media from S3 is namespace ``s3://<bucket>``, name ``<key>``; Media Pocket's API names only the key, so
  the bucket comes from the connection's extra ``s3_bucket`` and without it the input is left out;
* a Media Pocket asset is namespace ``mediapocket://<host>``, name ``assets/<id>`` (a project:
  ``projects/<id>``), the same as :func:`~airflow_provider_mediapocket.assets.convert_asset_to_openlineage`
  gives for its Airflow Asset URI.

A DAG action run adds the run facet ``mediaPocketDagActionRun`` (action id and name, run id and status,
asset id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attr
from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_mediapocket.assets import SCHEME, AssetChange, Outcome, host_of
from airflow_provider_mediapocket.hooks.mediapocket import connection_extras

__all__ = ["MediaPocketDagActionRunFacet", "operator_lineage"]

FACET_KEY = "mediaPocketDagActionRun"


@attr.define
class MediaPocketDagActionRunFacet(RunFacet):  # type: ignore[misc,unused-ignore]
    """The Media Pocket DAG action run a task started (its schema is OpenLineage's generic RunFacet:
    a run facet may carry any properties)."""

    dagActionId: str | None = None  # OpenLineage facets use camelCase
    dagActionName: str | None = None
    dagActionRunId: str | None = None
    status: str | None = None
    assetId: str | None = None


def url_dataset(url: Any) -> Dataset | None:
    """A source media URL as a dataset: ``scheme://host[:port]`` + path; None if it is not an http(s) URL."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = host_of(f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}")
    return Dataset(namespace=f"{parts.scheme}://{host}", name=parts.path or "/")


def s3_dataset(bucket: str | None, key: Any) -> Dataset | None:
    if not bucket or key in (None, ""):
        return None
    return Dataset(namespace=f"s3://{bucket}", name=str(key).lstrip("/"))


def mediapocket_dataset(host: str, *, asset_id: Any = None, project_id: Any = None) -> Dataset:
    kind, value = ("assets", asset_id) if asset_id is not None else ("projects", project_id)
    return Dataset(namespace=f"{SCHEME}://{host}", name=f"{kind}/{value}")


def _s3_bucket(operator: Any) -> str | None:
    """The connection's extra ``s3_bucket`` (read only when a task took media from S3)."""
    hook = operator.hook
    extras = connection_extras(hook.get_connection(hook.mediapocket_conn_id), hook.mediapocket_conn_id)
    bucket = str(extras.get("s3_bucket") or "").strip()
    return bucket or None


def _inputs(operator: Any, outcome: Outcome | None) -> list[Dataset]:
    from airflow_provider_mediapocket.operators import mediapocket as ops

    if isinstance(operator, ops.MediaPocketBulkIngestOperator):
        items = operator.items if isinstance(operator.items, list) else []
        found = [url_dataset(item.get("file_url")) for item in items if isinstance(item, Mapping)]
    elif isinstance(operator, ops.MediaPocketStartDagActionOperator):
        found = [mediapocket_dataset(outcome.host, asset_id=operator.asset_id)] if outcome else []
    else:
        found = [url_dataset(getattr(operator, "file_url", None))]
        if getattr(operator, "s3_key", None) not in (None, ""):
            found.append(s3_dataset(_s3_bucket(operator), operator.s3_key))
    return [dataset for dataset in found if dataset is not None]


def _outputs(outcome: Outcome) -> list[Dataset]:
    def one(change: AssetChange) -> Dataset:
        if change.asset_id is not None:
            return mediapocket_dataset(outcome.host, asset_id=change.asset_id)
        return mediapocket_dataset(outcome.host, project_id=change.project_id)

    return [one(change) for change in outcome.changes]


def _run_facets(operator: Any, outcome: Outcome | None) -> dict[str, Any]:
    from airflow_provider_mediapocket.operators import mediapocket as ops

    if not isinstance(operator, ops.MediaPocketStartDagActionOperator) or outcome is None:
        return {}
    run = outcome.result if isinstance(outcome.result, Mapping) else {}
    action = run.get("dag_action") or {}

    def text(value: Any) -> str | None:
        return None if value in (None, "") else str(value)

    return {FACET_KEY: MediaPocketDagActionRunFacet(
        dagActionId=text(action.get("id")) or text(operator.dag_action_id),
        dagActionName=text(action.get("name")) or text(operator.dag_action_name),
        dagActionRunId=text(run.get("id")),
        status=text(run.get("status")),
        assetId=text(operator.asset_id),
    )}


def operator_lineage(operator: Any) -> OperatorLineage:  # type: ignore[type-arg]
    """The lineage of a Media Pocket operator whose task finished (inputs only, if it failed first)."""
    outcome: Outcome | None = getattr(operator, "_mediapocket_outcome", None)
    return OperatorLineage(
        inputs=_inputs(operator, outcome),
        outputs=_outputs(outcome) if outcome is not None else [],
        run_facets=_run_facets(operator, outcome),
    )
