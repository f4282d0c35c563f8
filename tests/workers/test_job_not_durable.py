"""An rq job whose run is not durable fails (issue 12): rq delivers it again, and the next
delivery resumes from what the store holds, instead of the job reporting a run as done that
a crash would lose."""

from __future__ import annotations

from typing import Any

import pytest

import warlock_ai as ai
from tests.stores.test_store_outage import private_redis  # noqa: F401  (a fixture)
from warlock_ai import jobs
from warlock_ai.core.errors import NotPersistedError
from warlock_ai.registry import registry

pytestmark = pytest.mark.services

FLOW = "not-durable"


def test_a_job_whose_last_write_failed_fails_and_its_redelivery_completes_the_run(
    private_redis,  # noqa: F811
):
    store = ai.snapshot.redis(url=private_redis.url, prefix="nd:", write_retry_seconds=0.2)
    calls: list[str] = []

    def step(name: str, stop: bool = False) -> Any:
        def body(ctx: Any) -> None:
            calls.append(name)
            if stop and len(calls) == 2:  # the first delivery only
                private_redis.stop()
            ctx.state[name] = True

        return ai.step(name, body)

    registry.register(
        ai.workflow(
            name=FLOW,
            steps=[step("one"), step("two", stop=True), step("three")],
            snapshot_store=store,
        )
    )
    try:
        with pytest.raises(NotPersistedError) as raised:
            jobs.execute_job(f"workflow:{FLOW}", None, "nd-1")
        message = raised.value.message
        assert "\n" not in message
        assert message.startswith("run nd-1 completed but is not durable: 2 snapshot writes")
        assert "the stored run cannot be read: StoreUnavailableError" in message  # still down

        private_redis.start()
        assert store.load("nd-1").next_step == "two", "stored: one done, two next"
        summary = jobs.execute_job(f"workflow:{FLOW}", None, "nd-1")  # rq's redelivery
        assert summary["status"] == "completed" and summary["outcome"] == "resumed"
        assert calls == ["one", "two", "three", "two", "three"], "resumed from what is stored"
        assert store.load("nd-1").status == "completed"
    finally:
        registry.unregister("workflow", FLOW)
