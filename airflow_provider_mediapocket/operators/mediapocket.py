"""Operators for Media Pocket ingest pipelines: assets, media, projects, comments and DAG actions.

Every operator templates its ids and payload fields, validates them after rendering and before any
request, and returns plain JSON to XCom. Operators that create something remember what they created
in Airflow's ``task_state_store`` (Airflow >= 3.3), so a retried task re-attaches to it instead of
creating it twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin

from airflow_provider_mediapocket import DEFAULT_CONN_ID
from airflow_provider_mediapocket._lazy import lazy_module
from airflow_provider_mediapocket._metadata import METADATA, metadata_of
from airflow_provider_mediapocket._mixin import MediaPocketMixin, default_deferrable
from airflow_provider_mediapocket._recovery import matches
from airflow_provider_mediapocket._redact import media_fingerprint, redact_url
from airflow_provider_mediapocket._task_state import TaskState
from airflow_provider_mediapocket._validation import check_id, exactly_one
from airflow_provider_mediapocket.exceptions import (
    TRANSIENT_ERRORS,
    MediaPocketError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketTimeoutError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.links.mediapocket import (
    ASSET_URL_KEY,
    RUN_URL_KEY,
    MediaPocketAssetLink,
    MediaPocketDagActionRunLink,
)
from airflow_provider_mediapocket.operators._common import CreateOnceMixin, positive_number
from airflow_provider_mediapocket.waiting import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_SUCCESS_STATUSES,
    RunWatch,
    check_status_sets,
    normalise_statuses,
    run_name,
)

if TYPE_CHECKING:
    from airflow_provider_mediapocket._transport import ApiCall
    from airflow_provider_mediapocket.hooks import _api
    from airflow_provider_mediapocket.models import Asset, Comment, DagActionRun, MediaFromUrl, Project
else:  # the request builders and models load when a task runs, not when a DAG file is parsed
    _api = lazy_module("airflow_provider_mediapocket.hooks._api")

DEFAULT_RUN_TIMEOUT = timedelta(days=7)


class _MediaPocketOperator(CreateOnceMixin, MediaPocketMixin, BaseOperator):
    """Base: connection id and hook parameters (timeout, retry_limit, retry_backoff, verify_ssl)."""

    ui_color = "#d9ecff"

    def __init__(
        self,
        *,
        mediapocket_conn_id: str = DEFAULT_CONN_ID,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mediapocket_conn_id = mediapocket_conn_id
        self.hook_params = dict(hook_params or {})

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source media in, the Media Pocket assets out (see ``_lineage``); called by the
        optional OpenLineage provider only, which is imported here and not before."""
        from airflow_provider_mediapocket._lineage import operator_lineage

        return operator_lineage(self)


class MediaPocketCreateAssetOperator(_MediaPocketOperator):
    """Create an asset, optionally in a project and with media from a URL or S3.

    With ``project_id`` the asset is created in that project in one call (media from ``file_url`` or
    ``s3_key``). Without it the asset is created and, given ``file_url``, the media is added. Returns
    the asset as the API returns it. ``filename`` defaults to the last path segment of ``file_url``.

    A media failure that the API reports as HTTP 200 fails the task; its message names the asset that
    was created. A retried task does not create a second asset: the asset id is kept in
    ``task_state_store``, and with ``external_id`` in a project an earlier asset is also found by it.
    """

    template_fields: Sequence[str] = (
        *METADATA, "media_type", "project_id", "file_url", "filename", "s3_key", "mediapocket_conn_id",
    )
    operator_extra_links = (MediaPocketAssetLink(),)
    state_key = "mediapocket_asset_id"

    def __init__(
        self,
        *,
        title: str,
        description: str | None = None,
        category: str | None = None,
        tags: list[str] | None = None,
        media_type: str | None = None,
        external_id: str | None = None,
        project_id: str | None = None,
        file_url: str | None = None,
        filename: str | None = None,
        s3_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.description = description
        self.category = category
        self.tags = tags
        self.media_type = media_type
        self.external_id = external_id
        self.project_id = project_id
        self.file_url = file_url
        self.filename = filename
        self.s3_key = s3_key

    def _requests(self) -> tuple[ApiCall[Asset], MediaFromUrl | None]:
        """The create request and the media to add after it; building them checks every parameter, so
        bad input fails before anything is sent."""
        fields = {**metadata_of(self), "media_type": self.media_type}
        if self.project_id is not None:
            return _api.create_project_asset(
                self.project_id, file_url=self.file_url, filename=self.filename, s3_key=self.s3_key, **fields
            ), None
        if self.s3_key is not None:
            raise MediaPocketValidationError(
                "Invalid parameter 's3_key': media from S3 needs project_id (Media Pocket only takes S3 media "
                "when creating an asset in a project)"
            )
        if self.filename is not None and self.file_url is None:
            raise MediaPocketValidationError("Invalid parameter 'filename': give it with file_url")
        create = _api.create_asset(**fields)
        return create, None if self.file_url is None else _api.media_from_url(self.file_url, self.filename)

    def execute(self, context: Any) -> dict[str, Any]:
        create, media = self._requests()
        state = TaskState.of(context)
        stored = state.get(self.state_key)
        asset = self._resume(str(stored)) if stored else self._create(state, create, media)
        self.push_url(context, ASSET_URL_KEY, self.asset_url(asset.id))
        self.log.info("Asset %s (%s): media_type=%s", asset.id, asset.title, asset.media_type)
        return asset.to_xcom()

    def _remember(self, state: TaskState, asset_id: str) -> None:
        state.set(self.state_key, asset_id)
        state.delete(f"{self.state_key}_intent")

    def _what(self) -> str:
        where = f" in project {self.project_id}" if self.project_id is not None else ""
        key = f" (external_id {self.external_id!r})" if self.external_id else ""
        return f"asset {self.title!r}{where}{key}"

    def _reuse(self, asset: Asset) -> Asset:
        """An asset an earlier attempt may have made, checked against this request (media added if missing)."""
        return self.hook.reuse_asset(asset, file_url=self.file_url, filename=self.filename, s3_key=self.s3_key)

    def _create(self, state: TaskState, create: ApiCall[Asset], media: MediaFromUrl | None) -> Asset:
        hook = self.hook
        if self.project_id is not None:
            self._found: set[str] = set()
            asset = self.create_once(
                state, self.state_key, self._what(), lambda: self._create_in_project(state, create),
                self._find_in_project, lambda found: found.id,
            )
            # A create whose answer was lost may have made the asset without its media: check what was
            # found (a fresh answer needs no check; one found by "external id taken" was checked already).
            return self._reuse(asset) if asset.id in self._found else asset
        # Outside a project the API has no listing: with external_id a resend is refused as a duplicate
        # (nothing to look for first), without one a lost answer cannot be checked at all.
        find: Any = (lambda sent_at: []) if self.external_id else None
        asset = self.create_once(state, self.state_key, self._what(), lambda: self._create_standalone(create),
                                 find, lambda made: made.id)
        if media is not None:
            self._add_media(asset.id, media)
            asset = hook.get_asset(asset.id)
        return asset

    def _create_standalone(self, create: ApiCall[Asset]) -> Asset:
        try:
            return self.hook.run(create)
        except MediaPocketValidationError as exc:
            if "external id" not in (exc.server_message or "").lower():
                raise
            raise MediaPocketOperationError(
                f"An asset with external_id {self.external_id!r} already exists (an earlier attempt whose answer "
                "was lost may have created it); without project_id Media Pocket offers no lookup by external_id, "
                "so it cannot be re-used: find it in Media Pocket, or give project_id",
                status=exc.status, method=exc.method, path=exc.path, server_message=exc.server_message,
            ) from exc

    def _create_in_project(self, state: TaskState, create: ApiCall[Asset]) -> Asset:
        try:
            return self.hook.run(create)
        except MediaPocketOperationError as exc:
            if exc.created_asset_id:
                self._remember(state, exc.created_asset_id)
                raise MediaPocketOperationError(
                    f"Asset {exc.created_asset_id} was created in project {self.project_id} but its media "
                    f"was not added: {exc.server_message}",
                    status=exc.status, method=exc.method, path=exc.path, server_message=exc.server_message,
                ) from exc
            raise
        except MediaPocketValidationError as exc:
            existing = self._find_by_external_id(exc)
            if existing is None:
                raise
            return existing

    def _find_in_project(self, sent_at: float) -> list[Asset]:
        """Assets of the project that an attempt sent at ``sent_at`` may have created."""
        assets = self.hook.list_project_assets(str(self.project_id)).assets
        if self.external_id:
            found = [asset for asset in assets if asset.external_id == self.external_id]
        else:
            found = matches(assets, sent_at, lambda asset: (asset.title, asset.external_id), (self.title, None),
                            lambda asset: asset.created_date)
        self._found.update(asset.id for asset in found)
        return found

    def _add_media(self, asset_id: str, media: MediaFromUrl) -> None:
        try:
            self.hook.run(_api.put_media(asset_id, media))
        except MediaPocketError as exc:
            raise type(exc)(
                f"Asset {asset_id} was created but adding its media failed: {exc}",
                status=exc.status, method=exc.method, path=exc.path, server_message=exc.server_message,
            ) from exc

    def _find_by_external_id(self, exc: MediaPocketValidationError) -> Asset | None:
        """After "External id has already been taken" in a project: the asset an earlier try created,
        checked against this request (media missing -> added; another file -> an error)."""
        if not self.external_id or "external id" not in (exc.server_message or "").lower():
            return None
        asset = self.hook.find_project_asset(str(self.project_id), external_id=self.external_id)
        if asset is not None:
            # The designed path of a daily re-run of the same manifest, not a problem: INFO.
            self.log.info(
                "An asset with external_id %r already exists in project %s (%s): using it instead of creating "
                "another", self.external_id, self.project_id, asset.id,
            )
            asset = self._reuse(asset)
        return asset

    def _resume(self, asset_id: str) -> Asset:
        """A retry: the asset exists already; add its media if the previous try did not."""
        self.log.info("Re-attaching to asset %s created by an earlier try", asset_id)
        return self._reuse(self.hook.get_asset(asset_id))


class MediaPocketAddMediaOperator(_MediaPocketOperator):
    """Add media to an asset from ``file_url`` (``filename`` defaults to its last path segment).

    Returns the asset id. A retry after the media was added does not add it again.
    """

    template_fields: Sequence[str] = ("asset_id", "file_url", "filename", "mediapocket_conn_id")
    operator_extra_links = (MediaPocketAssetLink(),)
    state_key = "mediapocket_media_added"

    def __init__(self, *, asset_id: str, file_url: str, filename: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.file_url = file_url
        self.filename = filename

    def execute(self, context: Any) -> str:
        call = _api.add_media(self.asset_id, self.file_url, self.filename)
        asset_id = check_id("asset_id", self.asset_id)
        state = TaskState.of(context)
        self.push_url(context, ASSET_URL_KEY, self.asset_url(asset_id))
        # The store keeps a fingerprint, never the URL: a presigned URL is a credential.
        fingerprint = media_fingerprint(call.json or {})
        if state.get(self.state_key) in (fingerprint, call.json):
            self.log.info(
                "Media %s was already added to asset %s by an earlier try", redact_url(self.file_url), asset_id
            )
            return asset_id
        self.hook.run(call)
        state.set(self.state_key, fingerprint)
        self.log.info("Added media %s to asset %s", redact_url(self.file_url), asset_id)
        return asset_id


class MediaPocketAssignAssetOperator(_MediaPocketOperator):
    """Put an asset in a project. Returns the asset id; "Project not found." (HTTP 200) fails the task."""

    template_fields: Sequence[str] = ("asset_id", "project_id", "mediapocket_conn_id")
    operator_extra_links = (MediaPocketAssetLink(),)

    def __init__(self, *, asset_id: str, project_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.project_id = project_id

    def execute(self, context: Any) -> str:
        call = _api.assign_asset(self.asset_id, self.project_id)
        asset_id = check_id("asset_id", self.asset_id)
        self.push_url(context, ASSET_URL_KEY, self.asset_url(asset_id))
        self.hook.run(call)
        self.log.info("Asset %s is now in project %s", asset_id, self.project_id)
        return asset_id


class MediaPocketUpdateAssetOperator(_MediaPocketOperator):
    """Update an asset's title, description, category, tags and/or external_id. Returns the asset."""

    template_fields: Sequence[str] = ("asset_id", *METADATA, "mediapocket_conn_id")
    operator_extra_links = (MediaPocketAssetLink(),)

    def __init__(
        self,
        *,
        asset_id: str,
        title: str | None = None,
        description: str | None = None,
        category: str | None = None,
        tags: list[str] | None = None,
        external_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.title = title
        self.description = description
        self.category = category
        self.tags = tags
        self.external_id = external_id

    def execute(self, context: Any) -> dict[str, Any]:
        asset = self.hook.run(_api.update_asset(self.asset_id, **metadata_of(self)))
        self.push_url(context, ASSET_URL_KEY, self.asset_url(asset.id))
        return asset.to_xcom()


class MediaPocketTrashAssetOperator(_MediaPocketOperator):
    """Move an asset to the trash bin (``restore=True``: take it back out). Returns the asset id.

    Idempotent: trashing an asset that is already trashed, or restoring one that is not, succeeds.
    """

    template_fields: Sequence[str] = ("asset_id", "mediapocket_conn_id")

    def __init__(self, *, asset_id: str, restore: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.restore = restore

    def execute(self, context: Any) -> str:
        asset_id = check_id("asset_id", self.asset_id)
        asset = self.hook.get_asset(asset_id)
        if asset.is_trashed == (not self.restore):
            self.log.info("Asset %s is already %s", asset_id, "restored" if self.restore else "in the trash bin")
        elif self.restore:
            self.hook.restore_asset(asset_id)
        else:
            self.hook.trash_asset(asset_id)
        return asset_id


class MediaPocketRestoreAssetOperator(MediaPocketTrashAssetOperator):
    """Restore an asset from the trash bin. Returns the asset id."""

    def __init__(self, *, asset_id: str, **kwargs: Any) -> None:
        super().__init__(asset_id=asset_id, restore=True, **kwargs)


class MediaPocketCreateProjectOperator(_MediaPocketOperator):
    """Create a project (a sub-project with ``parent_project_id``). Returns the project.

    A retried task re-uses the project the earlier try created (``task_state_store``).
    """

    template_fields: Sequence[str] = (*METADATA, "parent_project_id", "mediapocket_conn_id")
    state_key = "mediapocket_project_id"

    def __init__(
        self,
        *,
        title: str,
        description: str | None = None,
        category: str | None = None,
        tags: list[str] | None = None,
        external_id: str | None = None,
        parent_project_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.description = description
        self.category = category
        self.tags = tags
        self.external_id = external_id
        self.parent_project_id = parent_project_id

    def execute(self, context: Any) -> dict[str, Any]:
        parent = self.parent_project_id
        call = _api.create_project(**metadata_of(self)) if parent is None else _api.create_subproject(
            check_id("parent_project_id", parent), **metadata_of(self)
        )
        state = TaskState.of(context)
        stored = state.get(self.state_key)
        if stored:
            self.log.info("Re-attaching to project %s created by an earlier try", stored)
            return self.hook.get_project(str(stored)).to_xcom()

        def create() -> Project:
            return self.hook.run(call)

        def find(sent_at: float) -> list[Project]:
            projects = self.hook.list_projects() if parent is None else self.hook.list_subprojects(parent)
            if self.external_id:
                return [project for project in projects if project.external_id == self.external_id]
            return matches(projects, sent_at, lambda p: (p.title, p.external_id), (self.title, None),
                           lambda p: p.created_date)

        where = f" in project {parent}" if parent is not None else ""
        project = self.create_once(state, self.state_key, f"project {self.title!r}{where}", create, find,
                                   lambda made: made.id)
        return project.to_xcom()


class MediaPocketAddCommentOperator(_MediaPocketOperator):
    """Comment on an asset (or on a project with ``project_id``). Returns the comment.

    A retried task does not post the comment twice (``task_state_store``).
    """

    template_fields: Sequence[str] = ("asset_id", "project_id", "comment", "mediapocket_conn_id")
    state_key = "mediapocket_comment_id"

    def __init__(
        self, *, comment: str, asset_id: str | None = None, project_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.comment = comment
        self.asset_id = asset_id
        self.project_id = project_id

    def execute(self, context: Any) -> dict[str, Any]:
        kind, target = _api.comment_target(self.asset_id, self.project_id)
        on_asset = kind is _api.ASSETS
        call = (_api.create_asset_comment if on_asset else _api.create_project_comment)(target, self.comment)
        state = TaskState.of(context)
        stored = state.get(self.state_key)
        if stored is not None:
            self.log.info("The comment was already posted by an earlier try (comment %s)", stored)
            get = self.hook.get_asset_comment if on_asset else self.hook.get_project_comment
            return get(target, stored).to_xcom()
        listing = self.hook.list_asset_comments if on_asset else self.hook.list_project_comments

        def find(sent_at: float) -> list[Comment]:
            return matches(listing(target), sent_at, lambda c: c.message, self.comment, lambda c: c.updated_at)

        comment = self.create_once(
            state, self.state_key, f"a comment on {kind.noun} {target}",
            lambda: self.hook.run(call), find, lambda made: str(made.id),
        )
        return comment.to_xcom()


class MediaPocketStartDagActionOperator(ResumableJobMixin, _MediaPocketOperator):
    """Start a Media Pocket DAG action on an asset and (by default) wait for its run to finish.

    :param asset_id: the asset (templated).
    :param dag_action_id: the DAG action's id; or
    :param dag_action_name: its name, resolved through the asset's DAG action list (exactly one of the two;
        an unknown name lists the valid ones).
    :param wait_for_completion: wait for the run to reach a success or failure status (default True).
    :param poll_interval: seconds between checks (default 30).
    :param timeout: how long to wait for the run (seconds or timedelta, default 7 days).
    :param success_statuses: / :param failure_statuses: as in MediaPocketDagActionRunSensor.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    :param reattach_on_retry: on a retry with no run id stored (no ``task_state_store`` before Airflow
        3.3, or a try that died before storing it), attach to the one run of this DAG action on the
        asset that is still running instead of starting another; two or more such runs fail the task
        naming them (default True).

    Returns the DAG action run (its final state when it waited). Run messages go to the task log once
    each, in order; a failed run fails the task with its messages. The run id is stored in
    ``task_state_store`` as soon as the start returns, before anything else, so a retried task
    re-attaches to that run instead of starting another (a run that already failed is started afresh).
    The UI links are pushed before waiting.
    """

    template_fields: Sequence[str] = (
        "asset_id", "dag_action_id", "dag_action_name", "mediapocket_conn_id",
    )
    operator_extra_links = (MediaPocketAssetLink(), MediaPocketDagActionRunLink())
    external_id_key = "mediapocket_dag_action_run_id"

    def __init__(
        self,
        *,
        asset_id: str,
        dag_action_id: int | str | None = None,
        dag_action_name: str | None = None,
        wait_for_completion: bool = True,
        poll_interval: float | timedelta = 30,
        timeout: float | timedelta = DEFAULT_RUN_TIMEOUT,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        deferrable: bool | None = None,
        reattach_on_retry: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.reattach_on_retry = reattach_on_retry
        self.dag_action_id = dag_action_id
        self.dag_action_name = dag_action_name
        self.wait_for_completion = wait_for_completion
        self.poll_interval = positive_number("poll_interval", poll_interval)
        self.run_timeout = positive_number("timeout", timeout)
        self.success_statuses = normalise_statuses("success_statuses", success_statuses, DEFAULT_SUCCESS_STATUSES)
        self.failure_statuses = normalise_statuses("failure_statuses", failure_statuses, DEFAULT_FAILURE_STATUSES)
        check_status_sets(self.success_statuses, self.failure_statuses)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._run: DagActionRun | None = None

    # ------------------------------------------------------------------------------ validation

    def _checked(self) -> str:
        """Validate the rendered parameters (no request); return the asset id."""
        asset_id = check_id("asset_id", self.asset_id)
        if exactly_one(dag_action_id=self.dag_action_id, dag_action_name=self.dag_action_name) == "dag_action_id":
            check_id("dag_action_id", self.dag_action_id)
        elif not isinstance(self.dag_action_name, str) or not self.dag_action_name.strip():
            raise MediaPocketValidationError(
                f"Invalid parameter 'dag_action_name': must be a non-empty string (got {self.dag_action_name!r})"
            )
        return asset_id

    def resolve_dag_action_id(self, asset_id: str) -> str:
        if self.dag_action_id not in (None, ""):
            return check_id("dag_action_id", self.dag_action_id)
        actions = self.hook.list_dag_actions(asset_id)
        wanted = str(self.dag_action_name).strip().lower()
        for action in actions:
            if (action.name or "").strip().lower() == wanted:
                return str(action.id)
        names = ", ".join(repr(action.name) for action in actions) or "none"
        raise MediaPocketValidationError(
            f"Invalid parameter 'dag_action_name': no DAG action named {self.dag_action_name!r} for asset "
            f"{asset_id}; valid names: {names}"
        )

    # ------------------------------------------------------------------------------ execution

    def execute(self, context: Any) -> Any:
        self._asset_id = self._checked()
        self._watch = RunWatch(self._asset_id, self.success_statuses, self.failure_statuses)
        self._context = context
        if self.reattach_on_retry:
            run_id = self._reattach(context)
            if run_id is not None:
                return self.poll_until_complete(run_id, context)
        return self.execute_resumable(context)

    def _reattach(self, context: Any) -> str | None:
        """On a retry that has no stored run id: the one run of this action still running on the asset."""
        ti = context.get("ti")
        try_number = getattr(ti, "try_number", None)
        if not isinstance(try_number, int) or try_number <= 1:
            return None
        state = TaskState.of(context)
        if state.get(self.external_id_key):
            return None  # the stored id is the run to re-attach to (execute_resumable)
        asset_id = self._asset_id
        action_id = self.resolve_dag_action_id(asset_id)
        try:
            runs = self.hook.list_dag_action_runs(asset_id)
        except MediaPocketPermissionError as exc:
            self.log.warning(
                "Try %d: cannot list the asset's runs to find one an earlier try started (%s); starting a new "
                "run", try_number, exc,
            )
            return None
        active = [
            run for run in runs
            if (run.dag_action is None or str(run.dag_action.id) == action_id)
            and self._watch.classify(run.status) == "running"
        ]
        if len(active) > 1:
            raise MediaPocketOperationError(
                f"Try {try_number}: {len(active)} runs of DAG action {action_id} are running on asset {asset_id} "
                f"({', '.join(str(run.id) for run in active)}) and no run id was stored by an earlier try, so it "
                "cannot tell which one is its own: not starting another. Wait for them or stop them in Media "
                "Pocket, or set reattach_on_retry=False"
            )
        if not active:
            return None
        run = active[0]
        self.log.info(
            "Try %d: attaching to %s (status %r; an earlier try started it, no run id was stored)",
            try_number, run_name(run, asset_id), run.status,
        )
        state.set(self.external_id_key, str(run.id))
        self._run = run
        self._push_links(context, asset_id, run.id)
        return str(run.id)

    def submit_job(self, context: Any) -> str:
        asset_id = self._asset_id
        action_id = self.resolve_dag_action_id(asset_id)
        run = self.hook.start_dag_action(asset_id, action_id)
        # Persist the id before anything else can fail (XCom pushes, logging): a retry must find it.
        TaskState.of(context).set(self.external_id_key, str(run.id))
        self._run = run
        self.log.info(self._watch.started(run))
        self._push_links(context, asset_id, run.id)
        return str(run.id)

    def _push_links(self, context: Any, asset_id: str, run_id: Any) -> None:
        """Before any wait: the ids (XCom keys ``asset_id``, ``dag_action_run_id``) and the links' URLs."""
        context["ti"].xcom_push(key="asset_id", value=asset_id)
        context["ti"].xcom_push(key="dag_action_run_id", value=str(run_id))
        self.push_url(context, ASSET_URL_KEY, self.asset_url(asset_id))
        self.push_url(context, RUN_URL_KEY, self.run_url(asset_id, run_id))

    def get_job_status(self, external_id: Any, context: Any) -> str:
        self._run = self.hook.get_dag_action_run(self._asset_id, external_id)
        self._push_links(context, self._asset_id, external_id)
        return self._run.status or ""

    def is_job_active(self, status: str) -> bool:
        return self._watch.classify(status) == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return self._watch.classify(status) == "success"

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        """Wait for the run (on the worker, or deferred); returns the final run (JSON)."""
        asset_id = self._asset_id
        if not self.wait_for_completion:
            return self.get_job_result(external_id, context)
        deadline = time.time() + self.run_timeout
        run = self._run if self._run is not None else self.hook.get_dag_action_run(asset_id, external_id)
        while True:
            if self.report(self._watch.observe(run)).outcome == "success":
                self._run = run
                return run.to_xcom()
            if self.deferrable:
                self._defer(external_id, deadline)
            if time.time() >= deadline:
                raise MediaPocketTimeoutError(
                    f"{run_name(run, asset_id)} did not finish within {self.run_timeout:g}s (timeout; last status "
                    f"{run.status!r})"
                )
            time.sleep(min(self.poll_interval, max(deadline - time.time(), 0)))
            try:
                run = self.hook.get_dag_action_run(asset_id, external_id)
            except TRANSIENT_ERRORS as exc:
                self.log.warning("Transient Media Pocket error, polling again: %s", exc)

    def _defer(self, run_id: Any, deadline: float) -> None:
        self.defer(
            trigger=self.run_trigger(self._watch, run_id, deadline, self.poll_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(deadline - time.time(), 1.0)),
        )

    def get_job_result(self, external_id: Any, context: Any) -> Any:
        if self._run is None or str(self._run.id) != str(external_id):
            self._run = self.hook.get_dag_action_run(self._asset_id, external_id)
        return self._run.to_xcom()

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        return self.finish_run_event(event)


class MediaPocketBulkIngestOperator(_MediaPocketOperator):
    """Create many assets with their media concurrently through the async client.

    :param items: a list (or XCom) of dicts ``{title, file_url, external_id, filename?, tags?,
        description?, category?}`` (templated). Every item is validated before anything is sent.
    :param project_id: create the assets in this project, each with its media in one call (templated).
        With a project, an answer lost on the way back is recovered by looking the item up by
        ``external_id``; without one, such an item is reported as failed (the API has no lookup).
    :param max_concurrency: requests in flight at once (default 16).
    :param allow_partial_success: succeed even if some items failed (default False: the task fails at
        the end, after every item was tried, and the results are still pushed to XCom key ``results``).

    Returns one result per item, in order: ``{external_id, asset_id, status, error}`` with status
    ``created``, ``existing`` (made by an earlier try or run) or ``failed``. Each item's result is saved
    to ``task_state_store`` as soon as it is known, so a retried task (even after a try killed half-way)
    skips the items an earlier try finished, resumes an asset whose media was not added yet, and
    ``external_id`` guards the rest. An existing asset is re-used only after checking it against the
    item: media missing -> added; media with another file name -> the item fails.
    """

    template_fields: Sequence[str] = ("items", "project_id", "mediapocket_conn_id")
    state_key = "mediapocket_bulk_created"
    pending_key = "mediapocket_bulk_pending"

    def __init__(
        self,
        *,
        items: Any,
        project_id: str | None = None,
        max_concurrency: int = 16,
        allow_partial_success: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise MediaPocketValidationError(
                f"Invalid parameter 'max_concurrency': must be a whole number >= 1 (got {max_concurrency!r})"
            )
        self.items = items
        self.project_id = project_id
        self.max_concurrency = max_concurrency
        self.allow_partial_success = allow_partial_success

    def execute(self, context: Any) -> list[dict[str, Any]]:
        import asyncio

        from airflow_provider_mediapocket.bulk import ingest, validate_items

        project_id = None if self.project_id in (None, "") else check_id("project_id", self.project_id)
        items = validate_items(self.items, project_id)
        state = TaskState.of(context)
        done = dict(state.get(self.state_key, {}))
        pending = dict(state.get(self.pending_key, {}))
        if done:
            self.log.info("%d of %d items were created by an earlier try: skipping them", len(done), len(items))
        saved_done, saved_pending = dict(done), dict(pending)

        def on_progress(result: Any) -> None:
            """Save each item as it finishes: a try killed half-way (execution_timeout) loses nothing."""
            if result.asset_id is None:
                return
            if result.status in ("created", "existing"):
                saved_done[result.external_id] = result.asset_id
                state.set(self.state_key, saved_done)
                if saved_pending.pop(result.external_id, None) is not None:
                    state.set(self.pending_key, saved_pending)
            elif saved_pending.get(result.external_id) != result.asset_id:  # made, media not confirmed
                saved_pending[result.external_id] = result.asset_id
                state.set(self.pending_key, saved_pending)

        alarm = _AlarmForwarder()

        async def run() -> list[Any]:
            alarm.install()
            try:
                return await ingest(self.hook, items, max_concurrency=self.max_concurrency, done=done,
                                    pending=pending, on_progress=on_progress)
            finally:
                alarm.uninstall()
                await self.hook.aclose()

        try:
            try:
                results = asyncio.run(run())
            except asyncio.CancelledError:
                alarm.reraise()  # execution_timeout struck: end the try the way Airflow expects
                raise
        finally:  # whatever ends the try, what was done is kept (each item was saved as it finished, too)
            state.set(self.state_key, saved_done)
            state.set(self.pending_key, saved_pending)
        payload = [result.to_json() for result in results]
        counts = {status: sum(r.status == status for r in results) for status in ("created", "existing", "failed")}
        self.log.info("Bulk ingest of %d items: %s", len(results), counts)
        failed = [r for r in results if r.status == "failed"]
        for result in failed:
            self.log.error("Item %s failed: %s", result.external_id, result.error)
        if failed and not self.allow_partial_success:
            context["ti"].xcom_push(key="results", value=payload)
            raise MediaPocketError(
                f"{len(failed)} of {len(results)} items failed (first: {failed[0].external_id}: {failed[0].error}); "
                "every other item was ingested; the results are in XCom key 'results'"
            )
        return payload


class _AlarmForwarder:
    """Make Airflow's ``execution_timeout`` (SIGALRM -> ``AirflowTaskTimeout``) stop an ``asyncio.run``.

    Raised by a plain signal handler, the exception may land inside one of asyncio's callbacks or socket
    reads, which catch it (log it, or turn it into a connection error of one request) and carry on: the
    timeout would be lost. While the loop runs, SIGALRM is routed through the loop instead: it cancels
    the main task (every item's progress is saved on the way out) and, once the loop has ended, the
    original handler is called so the try ends with Airflow's own exception.
    """

    def __init__(self) -> None:
        self.previous: Any = None
        self.fired = False
        self.loop: Any = None

    def install(self) -> None:
        import asyncio
        import signal
        import threading

        previous = signal.getsignal(signal.SIGALRM) if hasattr(signal, "SIGALRM") else None
        if not callable(previous) or threading.current_thread() is not threading.main_thread():
            return  # no Python-level timeout handler to forward (no execution_timeout, or not the main thread)
        task = asyncio.current_task()
        self.loop, self.previous = asyncio.get_running_loop(), previous

        def on_alarm() -> None:
            self.fired = True
            if task is not None:
                task.cancel()

        self.loop.add_signal_handler(signal.SIGALRM, on_alarm)

    def uninstall(self) -> None:
        import signal

        if self.loop is not None:
            self.loop.remove_signal_handler(signal.SIGALRM)
            signal.signal(signal.SIGALRM, self.previous)  # remove_signal_handler left SIG_DFL
            self.loop = None

    def reraise(self) -> None:
        import signal

        if self.fired and callable(self.previous):
            self.fired = False
            self.previous(signal.SIGALRM, None)
