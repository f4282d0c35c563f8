"""Agent steps: prompt/options from input(), session id and cancel token forwarded, usage rolled
up across attempts, steps and resumes (reference 0.1, 1.3, decision 9)."""

import asyncio

import warlock_ai as ai


class Reply:
    def __init__(self, text, usage, error=None):
        self.text, self.usage, self.error = text, usage, error


class FakeAgent:
    """A minimal agent: the engine only needs ``name`` and ``execute`` (``aexecute`` optional)."""

    def __init__(self, name, fail_times=0, cached=0):
        self.name, self.fail_times, self.cached = name, fail_times, cached
        self.calls = []

    def _reply(self, prompt, options):
        self.calls.append((prompt, options))
        usage = ai.Usage(input=10, output=5, total=15, cached_tokens=self.cached, cost=0.25)
        if len(self.calls) <= self.fail_times:
            return Reply(None, usage, ai.AgentExecutionError("model overloaded"))
        return Reply(f"echo:{prompt}", usage)

    def execute(self, prompt, **options):
        return self._reply(prompt, options)


class AsyncFakeAgent(FakeAgent):
    async def aexecute(self, prompt, **options):
        await asyncio.sleep(0)
        return self._reply(prompt, options)


def writer_workflow(agent, **kwargs):
    return ai.workflow(
        name="agentic",
        steps=[
            ai.step(
                "write",
                agent=agent,
                input=lambda ctx: {"prompt": f"describe {ctx.input['sku']}", "temperature": 0},
                output=lambda ctx: ctx.agent_result.text,
                retry=ai.Retry(attempts=3, backoff="none"),
            )
        ],
        **kwargs,
    )


def test_agent_step_gets_prompt_options_session_and_cancel_token():
    agent = FakeAgent("writer")
    token = ai.CancelToken()
    result = writer_workflow(agent).execute({"sku": "a-1"}, session_id="s-9", cancel=token)
    assert result.error is None
    prompt, options = agent.calls[0]
    assert prompt == "describe a-1"
    assert options == {"temperature": 0, "cancel": token, "session_id": "s-9"}
    assert result.report.steps["write"].output == "echo:describe a-1"


def test_usage_counts_failed_attempts_and_keeps_every_channel():
    """Usage is merged even for failed attempts; cached tokens and cost survive the roll-up."""
    agent = FakeAgent("writer", fail_times=2, cached=3)
    result = writer_workflow(agent).execute({"sku": "a-1"})
    assert result.error is None
    assert len(agent.calls) == 3
    expected = ai.Usage(input=30, output=15, total=45, cached_tokens=9, cost=0.75)
    assert result.usage == expected
    assert result.report.usage == expected
    assert result.report.steps["write"].usage == expected


def test_agent_error_fails_the_step_with_the_agent_error_as_cause():
    agent = FakeAgent("writer", fail_times=5)
    result = writer_workflow(agent).execute({"sku": "a-1"})
    assert isinstance(result.error, ai.StepFailedError)
    assert isinstance(result.error.cause, ai.AgentExecutionError)
    assert result.usage.total == 45


async def test_async_agent_is_awaited_under_aexecute():
    agent = AsyncFakeAgent("writer")
    result = await writer_workflow(agent).aexecute({"sku": "b-2"})
    assert result.error is None
    assert result.report.steps["write"].output == "echo:describe b-2"


async def test_sync_only_agent_works_under_aexecute():
    agent = FakeAgent("writer")
    result = await writer_workflow(agent).aexecute({"sku": "c-3"})
    assert result.error is None and len(agent.calls) == 1


def test_resumed_report_counts_each_call_once():
    """Usage is stored in the snapshot: after a resume the report covers the whole run."""
    store = ai.snapshot.memory()
    agent = FakeAgent("writer")
    attempts = []

    def flaky(ctx):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("crash after the model call")

    def build():
        return ai.workflow(
            name="agentic",
            steps=[
                ai.step("write", agent=agent, input=lambda ctx: "p"),
                ai.step("publish", flaky),
            ],
            snapshot_store=store,
        )

    first = build().execute(run_id="u-1")
    assert first.status == "failed" and first.usage.total == 15
    resumed = build().resume("u-1")
    assert resumed.status == "completed"
    assert len(agent.calls) == 1
    assert resumed.usage.total == 15
    assert store.load("u-1").usage.total == 15
