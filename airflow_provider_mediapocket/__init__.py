"""Apache Airflow provider for the Media Pocket digital asset management API v2."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The default Airflow connection id of the Media Pocket hook, operators and sensors.
DEFAULT_CONN_ID = "mediapocket_default"

_PKG = "airflow_provider_mediapocket"

#: The project's page (its README) on the package index: the Providers page links to it.
DOCUMENTATION_URL = "https://pypi.org/project/airflow-provider-mediapocket/"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-mediapocket",
        "name": "Media Pocket",
        "description": "Media Pocket digital asset management (DAM) API v2: assets, media, projects "
        "and DAG actions, with deferrable waits.",
        "versions": [__version__],
        "documentation-url": DOCUMENTATION_URL,
        "integrations": [
            {
                "integration-name": "Media Pocket",
                "external-doc-url": "https://tryme.mediapocket.fi",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Media Pocket", "python-modules": [f"{_PKG}.hooks.mediapocket"]}],
        "operators": [{"integration-name": "Media Pocket", "python-modules": [f"{_PKG}.operators.mediapocket"]}],
        "sensors": [{"integration-name": "Media Pocket", "python-modules": [f"{_PKG}.sensors.mediapocket"]}],
        "triggers": [{"integration-name": "Media Pocket", "python-modules": [f"{_PKG}.triggers.mediapocket"]}],
        # mediapocket://<host>/assets/<id> and mediapocket://<host>/projects/<id> (see assets.py).
        "asset-uris": [
            {
                "schemes": ["mediapocket"],
                "handler": f"{_PKG}.assets.sanitize_uri",
                "factory": f"{_PKG}.assets.create_asset",
                "to_openlineage_converter": f"{_PKG}.assets.convert_asset_to_openlineage",
            }
        ],
        "notifications": [f"{_PKG}.notifications.mediapocket.MediaPocketNotifier"],
        # Airflow 3.3's provider info schema has no key for retry policies: MediaPocketRetryPolicy
        # (policies/mediapocket.py) is imported by DAGs directly.
        "extra-links": [
            f"{_PKG}.links.mediapocket.MediaPocketAssetLink",
            f"{_PKG}.links.mediapocket.MediaPocketDagActionRunLink",
        ],
        "connection-types": [
            {
                "connection-type": "mediapocket",
                "hook-class-name": f"{_PKG}.hooks.mediapocket.MediaPocketHook",
                "hook-name": "Media Pocket",
                "conn-fields": {
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Timeout of one HTTP request, over 0 and up to 3600. Default 30.",
                        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 3600, "default": 30},
                    },
                    "verify_ssl": {
                        "label": "Verify SSL",
                        "description": "Check the server's TLS certificate. Default true.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "retry_limit": {
                        "label": "Retry limit",
                        "description": "Retries of a transient failure (429, 5xx, network), 0 to 20. Default 3.",
                        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 20, "default": 3},
                    },
                    "ui_base_url": {
                        "label": "UI base URL",
                        "description": "Where the extra links point (an absolute http(s) URL). "
                        "Default: the Base URL.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "s3_bucket": {
                        "label": "S3 bucket (lineage)",
                        "description": "The bucket Media Pocket takes s3_key media from; only names the "
                        "OpenLineage inputs (s3://<bucket>/<key>). Optional.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "retry_backoff": {
                        "label": "Retry backoff (seconds)",
                        "description": "First retry delay, 0 to 300; doubles each retry, capped at 30 s, with jitter.",
                        "schema": {"type": ["number", "null"], "minimum": 0, "maximum": 300, "default": 1},
                    },
                },
                "ui-field-behaviour": {
                    # Port stays visible: Airflow 3.3.2's Test button (in the connection list) sends a
                    # stored empty Port as 0, and its API then answers "Bad Request" (host or port differs
                    # from the stored connection). A filled-in Port avoids that; hiding it would not.
                    "hidden-fields": ["login"],
                    "relabeling": {
                        "host": "Base URL",
                        "password": "API Key",
                        "schema": "Scheme (http or https)",
                        "port": "Port (fill in for Test on Airflow 3.3.2)",
                    },
                    "placeholders": {
                        "host": "https://tryme.mediapocket.fi",
                        "password": "Media Pocket API key (profile settings > API keys)",
                        "schema": "https",
                        "port": "443 for https, 80 for http, or the port in the Base URL",
                    },
                },
            }
        ],
    }
