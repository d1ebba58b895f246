"""Request deadlines kept by one timer (app/core/deadlines.py), on a real event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import TypeVar

import pytest

from app.core.deadlines import Deadlines

SECONDS = 0.2
T = TypeVar("T")
# Only a guard against a hang failing the run forever; not a timing assertion.
HANG_GUARD_SECONDS = 30


async def request(deadlines: Deadlines, work: asyncio.Event, *, held_for: float = 0) -> str:
    """What the guard does around a request: 'done', or 'timed out' when its deadline passed.

    `held_for`: first a step of that many seconds the deadline must not cut short.
    """
    deadline = deadlines.start()
    try:
        if held_for:
            deadline.hold()
            try:
                await asyncio.sleep(held_for)
            finally:
                deadline.release()
        await work.wait()
        return "done"
    except asyncio.CancelledError:
        if not deadlines.caused(deadline):
            raise
        return "timed out"
    finally:
        deadlines.finish(deadline)


async def test_each_request_times_out_at_its_own_deadline_whatever_finished_before() -> None:
    deadlines = Deadlines(SECONDS)
    never = asyncio.Event()
    quick = asyncio.Event()
    loop = asyncio.get_running_loop()

    async with asyncio.timeout(HANG_GUARD_SECONDS):
        first = asyncio.create_task(request(deadlines, never))
        await asyncio.sleep(SECONDS / 4)
        # Finishes first: the timer, armed for it, must still serve the others.
        second = asyncio.create_task(request(deadlines, quick))
        await asyncio.sleep(0)
        quick.set()
        await asyncio.sleep(SECONDS / 4)
        started_third = loop.time()
        third = asyncio.create_task(request(deadlines, never))
        results = [await first, await second, await third]
        ended_third = loop.time()

    assert results == ["timed out", "done", "timed out"]
    assert ended_third - started_third >= SECONDS


async def test_a_request_finished_in_time_is_not_cancelled_later() -> None:
    deadlines = Deadlines(SECONDS)
    work = asyncio.Event()
    task = asyncio.create_task(request(deadlines, work))
    await asyncio.sleep(0)
    work.set()
    assert await task == "done"

    await asyncio.sleep(SECONDS * 1.5)

    assert task.cancelling() == 0


async def test_a_cancellation_from_elsewhere_is_not_taken_for_the_deadline() -> None:
    deadlines = Deadlines(SECONDS)
    task = asyncio.create_task(request(deadlines, asyncio.Event()))
    await asyncio.sleep(0)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_elsewhere_after_the_deadline_still_stops_the_task() -> None:
    deadlines = Deadlines(SECONDS)
    stopped = asyncio.Event()

    async def answering_slowly() -> None:
        deadline = deadlines.start()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # The deadline passed, and the server stops the task too.
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            if not deadlines.caused(deadline):
                stopped.set()
                raise
        finally:
            deadlines.finish(deadline)

    task = asyncio.create_task(answering_slowly())
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        with pytest.raises(asyncio.CancelledError):
            await task

    assert stopped.is_set()


def test_deadlines_keep_working_on_a_new_event_loop() -> None:
    # One app serves several loops in a test run; a timer left on a closed loop serves nothing.
    deadlines = Deadlines(SECONDS)

    async def finished_at_once() -> str:
        work = asyncio.Event()
        work.set()
        return await request(deadlines, work)

    async def stalled() -> str:
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            return await request(deadlines, asyncio.Event())

    assert asyncio.run(finished_at_once()) == "done"
    assert asyncio.run(stalled()) == "timed out"


async def test_a_deadline_cancellation_swallowed_below_is_taken_back_at_the_end() -> None:
    deadlines = Deadlines(SECONDS)

    async def swallowing() -> int:
        deadline = deadlines.start()
        try:
            # Code below the guard that ignores its cancellation.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        finally:
            deadlines.finish(deadline)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    async with asyncio.timeout(HANG_GUARD_SECONDS):
        assert await asyncio.create_task(swallowing()) == 0


async def test_a_deadline_waits_for_a_held_step_then_cancels_at_the_next_wait() -> None:
    deadlines = Deadlines(SECONDS)
    loop = asyncio.get_running_loop()

    async with asyncio.timeout(HANG_GUARD_SECONDS):
        started = loop.time()
        # The step outlasts the deadline; what follows would wait forever.
        result = await request_task(request(deadlines, asyncio.Event(), held_for=SECONDS * 2))
        ended = loop.time()

    assert result == "timed out"
    # Not cancelled during the step: the sleep ran to its end.
    assert ended - started >= SECONDS * 2


async def test_a_request_that_ends_right_after_its_held_step_is_not_cancelled_later() -> None:
    deadlines = Deadlines(SECONDS)
    finished = asyncio.Event()
    finished.set()

    async def then_more_work() -> int:
        # As when the app runs in the caller's own task (a test client): the
        # task goes on after the request.
        result = await request(deadlines, finished, held_for=SECONDS * 2)
        assert result == "done"
        await asyncio.sleep(SECONDS)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    async with asyncio.timeout(HANG_GUARD_SECONDS):
        assert await request_task(then_more_work()) == 0


async def request_task(work: Coroutine[object, object, T]) -> T:
    return await asyncio.create_task(work)
