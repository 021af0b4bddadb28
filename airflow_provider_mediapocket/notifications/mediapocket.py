"""``MediaPocketNotifier``: write back to Media Pocket as a comment on an asset or a project.

Usable wherever Airflow 3.3 takes a notifier:

* task or DAG callbacks: ``on_failure_callback=MediaPocketNotifier(...)`` (also success, retry, skipped);
* deadline alerts: ``DeadlineAlert(..., callback=AsyncCallback(MediaPocketNotifier, kwargs={...}))`` runs it
  on the triggerer (``async_notify``), ``SyncCallback(MediaPocketNotifier, kwargs={...})`` on an executor;
* Human-in-the-loop steps: ``HITLOperator(..., notifiers=[MediaPocketNotifier(...)])`` comments when the
  step starts waiting for its answer.

Example::

    on_failure_callback=MediaPocketNotifier(
        asset_id="{{ task.asset_id }}",
        message="Airflow: {{ ti.task_id }} failed in {{ dag.dag_id }} ({{ run_id }}): {{ exception }}",
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.notifier import BaseNotifier

from airflow_provider_mediapocket import DEFAULT_CONN_ID
from airflow_provider_mediapocket._lazy import lazy_module
from airflow_provider_mediapocket.exceptions import MediaPocketValidationError

if TYPE_CHECKING:
    from airflow_provider_mediapocket.hooks import _api
    from airflow_provider_mediapocket.hooks._api import Kind
    from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
    from airflow_provider_mediapocket.models import Comment
else:  # the request builders load when the notifier runs, not when a DAG file is parsed
    _api = lazy_module("airflow_provider_mediapocket.hooks._api")

__all__ = ["MediaPocketNotifier", "send_mediapocket_comment"]


class MediaPocketNotifier(BaseNotifier):
    """Comment on a Media Pocket asset or project; every field is templated with the callback's context.

    :param message: the comment (templated), e.g. ``"{{ ti.task_id }} failed: {{ exception }}"``.
    :param asset_id: the asset to comment on (templated); or
    :param project_id: the project to comment on (templated); exactly one of the two.
    :param mediapocket_conn_id: the Media Pocket connection (templated).
    :param hook_params: hook arguments (``timeout``, ``retry_limit``, ``retry_backoff``, ``verify_ssl``).
    :param context: given by Airflow when it builds the notifier itself (deadline alert callbacks).

    Nothing is checked or sent when the notifier is built (DAG parse); after rendering, an empty or missing
    target or message fails with an error naming the parameter before any request. The comment is posted
    once: a failed post is not repeated blindly (the hook's retry rules for a POST apply).
    """

    template_fields: Sequence[str] = ("message", "asset_id", "project_id", "mediapocket_conn_id")

    def __init__(
        self,
        *,
        message: str,
        asset_id: str | None = None,
        project_id: str | None = None,
        mediapocket_conn_id: str = DEFAULT_CONN_ID,
        hook_params: dict[str, Any] | None = None,
        context: Any = None,
    ) -> None:
        if context is None:  # Airflow < 3.1's BaseNotifier takes no context
            super().__init__()
        else:
            super().__init__(context=context)
        self.message = message
        self.asset_id = asset_id
        self.project_id = project_id
        self.mediapocket_conn_id = mediapocket_conn_id
        self.hook_params = dict(hook_params or {})

    def _target(self) -> tuple[Kind[Any], str]:
        """``(ASSETS | PROJECTS, id)`` after rendering; an error naming the parameter if invalid."""
        target = _api.comment_target(self.asset_id, self.project_id)
        if not isinstance(self.message, str) or not self.message.strip():
            raise MediaPocketValidationError(
                f"Invalid parameter 'message': must be a non-empty string (got {self.message!r})"
            )
        return target

    def _hook(self) -> MediaPocketHook:
        from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook

        return MediaPocketHook(self.mediapocket_conn_id, **self.hook_params)

    def notify(self, context: Any) -> None:
        """Post the comment (sync: task and DAG callbacks, HITL steps, deadline ``SyncCallback``).

        :param context: the callback's Airflow context (the fields are rendered with it already).
        """
        kind, target = self._target()
        with self._hook() as hook:
            create = hook.create_asset_comment if kind is _api.ASSETS else hook.create_project_comment
            comment = create(target, self.message)
        self._posted(kind, target, comment)

    async def async_notify(self, context: Any) -> None:
        """Post the comment from the triggerer (deadline ``AsyncCallback``), without blocking its loop.

        :param context: the callback's Airflow context (the fields are rendered with it already).
        """
        kind, target = self._target()
        hook = self._hook()
        try:
            create = hook.acreate_asset_comment if kind is _api.ASSETS else hook.acreate_project_comment
            comment = await create(target, self.message)
        finally:
            await hook.aclose()
        self._posted(kind, target, comment)

    def _posted(self, kind: Kind[Any], target: str, comment: Comment) -> None:
        self.log.info("Commented on Media Pocket %s %s (comment %s)", kind.noun, target, comment.id)


#: The notifier under the name Airflow's own notifiers use for their function form, e.g. in a DAG's
#: ``on_failure_callback=send_mediapocket_comment(asset_id=..., message=...)``.
send_mediapocket_comment = MediaPocketNotifier
