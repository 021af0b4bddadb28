"""Tiny DAGs used to test the e2e ``dag.test()`` harness itself (no provider code involved)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, dag, task


class WaitDeferred(BaseOperator):
    """Defers to the standard provider's ``DateTimeTrigger`` (one second from now), then resumes.

    (``TimeDeltaSensor(deferrable=True)`` counts from the run's start and returns without deferring when the
    first task starts late, which it does: the in-process execution API takes seconds to build.)
    """

    def execute(self, context: Any) -> None:
        moment = datetime.now(timezone.utc) + timedelta(seconds=1)
        self.log.info("HARNESS deferring until %s", moment.isoformat())
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="resume")

    def resume(self, context: Any, event: Any = None) -> str:
        self.log.info("HARNESS resumed after the trigger fired, event=%r", event)
        return "resumed-after-trigger"


@dag(dag_id="harness_check", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["harness"])
def harness_check() -> None:
    @task
    def first() -> dict[str, int]:
        return {"n": 1}

    @task
    def double(x: int) -> int:
        return x * 2

    wait = WaitDeferred(task_id="wait_deferred")

    @task
    def echo_conf(dag_run: Any = None) -> Any:
        return (dag_run.conf or {}).get("who")

    @task
    def done(first_value: Any, doubled: Any) -> str:
        print(f"HARNESS OK first={first_value} doubled={sorted(doubled)}")
        return "ok"

    f = first()
    d = double.expand(x=[1, 2, 3])
    end = done(f, d)
    wait >> end
    echo_conf()


@dag(dag_id="harness_fail", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["harness"])
def harness_fail() -> None:
    @task(retries=0)
    def explode() -> None:
        raise ValueError("boom-123")

    @task
    def never_runs() -> None:
        print("should not run")

    explode() >> never_runs()


harness_check()
harness_fail()
