"""Operator extra links: the asset and the DAG action run in Media Pocket.

The operators push the URLs to XCom before they wait, so the links work while a task is running or
deferred, and after a failure.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

ASSET_URL_KEY = "mediapocket_asset_url"
RUN_URL_KEY = "mediapocket_dag_action_run_url"


class _XComUrlLink(BaseOperatorLink):
    url_key = ""

    @property
    def xcom_key(self) -> str:
        return self.url_key

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = XCom.get_value(ti_key=ti_key, key=self.url_key)
        return str(value) if value else ""


class MediaPocketAssetLink(_XComUrlLink):
    """Link to the asset the task created or worked on."""

    name = "Media Pocket asset"
    url_key = ASSET_URL_KEY


class MediaPocketDagActionRunLink(_XComUrlLink):
    """Link to the DAG action run the task started."""

    name = "DAG action run"
    url_key = RUN_URL_KEY
