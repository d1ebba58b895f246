"""A job's logs and spans join those of the request that queued it."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

from app.jobs.registry import HANDLERS
from app.jobs.runner import JobRunner
from tests.observability.conftest import LogLines, Traced

RESET_REQUEST = "/api/v1/auth/password-reset/request"


async def test_the_jobs_span_continues_the_requests_trace_and_its_logs_carry_the_request_id(
    traced: Traced, capture_logs: Callable[[], LogLines]
) -> None:
    lines = capture_logs()
    response = await traced.client.post(RESET_REQUEST, json={"email": "nobody@example.com"})
    request_id = response.headers["X-Request-ID"]
    server = traced.server_span(request_id)

    runner = JobRunner(
        traced.app.state.resources, HANDLERS, tracer=traced.app.state.tracing.tracer("app.jobs")
    )
    # In a context of its own, as in a worker: nothing of the request's is left in it.
    assert await asyncio.create_task(runner.run_due(), context=contextvars.Context()) == 1

    [job] = [span for span in traced.spans() if span.name == "job auth.password_reset_mail"]
    assert job.context.trace_id == server.context.trace_id
    assert job.parent is not None
    assert job.parent.span_id == server.context.span_id
    assert (job.attributes or {})["request_id"] == request_id
    job_lines = [
        r for r in lines.records() if r["event"].startswith(("job.", "auth.password_reset_mail"))
    ]
    assert {r["event"] for r in job_lines} == {"auth.password_reset_mail_skipped", "job.done"}
    assert {r.get("request_id") for r in job_lines} == {request_id}
