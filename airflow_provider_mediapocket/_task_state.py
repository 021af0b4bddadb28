"""What a task keeps across its tries: Airflow 3.3's ``task_state_store``, or nothing before 3.3."""

from __future__ import annotations

from typing import Any


class TaskState:
    """The try's ``task_state_store`` behind the three calls the provider needs.

    Before Airflow 3.3 the context has no store: every read answers its default and writes do nothing,
    so callers never branch on the Airflow version. Airflow 3.3.2's store refuses ``None`` as a value:
    setting ``None`` deletes the key instead.
    """

    def __init__(self, store: Any = None) -> None:
        self._store = store

    @classmethod
    def of(cls, context: Any) -> TaskState:
        """The state of the task whose ``context`` this is (works with any mapping-like context)."""
        return cls(context.get("task_state_store") if hasattr(context, "get") else None)

    @property
    def kept(self) -> bool:
        """Whether anything survives this try (False before Airflow 3.3)."""
        return self._store is not None

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when there is none (or no store)."""
        if self._store is None:
            return default
        value = self._store.get(key)
        return default if value is None else value

    def set(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON) under ``key``; ``None`` deletes the key."""
        if self._store is None:
            return
        if value is None:
            self.delete(key)
        else:
            self._store.set(key, value)

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is not there)."""
        if self._store is None:
            return
        delete = getattr(self._store, "delete", None)
        if delete is not None:
            delete(key)
        else:  # a store without delete: an empty mapping reads as "nothing recorded"
            self._store.set(key, {})
