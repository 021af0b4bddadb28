"""Redaction of credentials carried inside URLs, for everything the provider logs, stores or raises.

A presigned S3 (or GCS, Azure SAS) URL is a bearer credential: whoever holds its query string can
download the object until it expires. A URL with ``user:password@`` carries a password. Neither may
reach a task log, ``task_state_store``, XCom or an exception message, so every URL the provider shows
goes through :func:`redact_url` first.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "<redacted>"


def redact_url(url: object) -> str:
    """``url`` without its secrets: the query string and fragment become ``<redacted>`` and userinfo
    (``user:password@``) is dropped; scheme, host, port and path are kept so the URL stays recognisable.

    A value that cannot be parsed as a URL is shown as ``<redacted>`` entirely (it may be anything).
    """
    text = str(url)
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.netloc:
        # Not an absolute URL (a bare path or a typo): keep what precedes any query string, unless it
        # may hold userinfo ("user:password@host" without "//" parses as a scheme and a path).
        head = text.split("?", 1)[0].split("#", 1)[0]
        if "@" in head:
            return REDACTED
        return head + (f"?{REDACTED}" if head != text else "")
    netloc = ""
    if host is not None:
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc = f"{netloc}:{port}"
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def media_fingerprint(body: dict[str, Any]) -> dict[str, Any]:
    """What to keep (e.g. in ``task_state_store``) to recognise an add-media request later without
    keeping its URL: the redacted URL for people, a SHA-256 of the whole request for comparing."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"file_url": redact_url(body.get("file_url", "")), "filename": body.get("filename"), "sha256": digest}
