"""TaskState: one way to read and keep a task's state, with or without Airflow 3.3's task_state_store."""

from __future__ import annotations

from airflow_provider_mediapocket._task_state import TaskState
from tests.triggers._support import FakeStateStore


def test_without_a_store_reads_answer_the_default_and_writes_do_nothing() -> None:
    state = TaskState.of({"ti": object()})  # Airflow before 3.3: no task_state_store in the context
    state.set("key", "value")
    state.delete("key")
    assert not state.kept
    assert state.get("key") is None and state.get("key", {}) == {}


def test_with_a_store_values_are_kept_and_none_deletes() -> None:
    store = FakeStateStore()  # refuses None, as Airflow 3.3.2's store does
    state = TaskState.of({"task_state_store": store})
    state.set("asset", "A1")
    assert state.kept and state.get("asset") == "A1" and store.data == {"asset": "A1"}
    state.set("asset", None)
    assert store.data == {} and state.get("asset", "gone") == "gone"


def test_a_store_without_delete_is_emptied_instead() -> None:
    class NoDelete:
        def __init__(self) -> None:
            self.data: dict[str, object] = {"intent": {"sent_at": 1.0}}

        def get(self, key: str) -> object:
            return self.data.get(key)

        def set(self, key: str, value: object) -> None:
            self.data[key] = value

    store = NoDelete()
    TaskState(store).delete("intent")
    assert store.data == {"intent": {}}
