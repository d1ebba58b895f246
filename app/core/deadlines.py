"""Deadlines of one length, kept by one timer of the event loop for all of them.

`asyncio.timeout` arms a timer for each block it bounds and cancels it when
the block is done: about 5 µs under uvloop, a thirtieth of what a liveness
probe costs the server. Where every block gets the same time (each
request's REQUEST_TIMEOUT_SECONDS, each rate-limit storage call's
RATE_LIMIT_STORAGE_TIMEOUT_SECONDS), deadlines fall due in the order they
started: they wait in one insertion-ordered dict, and one timer, armed for
the oldest, serves them all. Starting and finishing is an insert and a
delete. When the timer fires, every task past its deadline is cancelled,
and the timer is armed again for the oldest one left (one that finished
meanwhile has left the dict, so the timer may fire early, never late).

The cancellation is told apart from any other as `asyncio.timeout` tells
it: by the task's count of pending cancellations when the deadline started.
Deadlines nest as `asyncio.timeout`s do: of two that pass at once, the
outer one's is the cancellation seen.
"""

from __future__ import annotations

import asyncio

# Where the request guard leaves the request's deadline in the ASGI scope.
REQUEST_DEADLINE = "groundwork.deadline"


class Deadline:
    """One task's, for one block: the task, when it falls due, and whether it has."""

    __slots__ = ("cancelling", "due", "held", "late", "overdue", "passed", "settled", "task")

    def __init__(self, task: asyncio.Task[object], due: float) -> None:
        self.task = task
        self.due = due
        # Cancellations already asked of the task: the deadline's own is one more.
        self.cancelling = task.cancelling()
        self.passed = False
        self.settled = False
        self.held = False
        self.overdue = False
        self.late: asyncio.Handle | None = None

    def hold(self) -> None:
        """Until `release`, a deadline that falls due waits: what runs now must not be cut short.

        For a step that leaves shared state broken if interrupted half-way,
        such as handing a database connection back rolled back; asyncio's
        way, a task of its own behind `asyncio.shield`, costs every request
        a task.
        """
        self.held = True

    def release(self) -> None:
        """The step is over; a deadline that fell due meanwhile cancels the task next."""
        self.held = False
        if self.overdue:
            self.overdue = False
            # From the loop, as the timer does, so the task is waiting when it
            # is cancelled and the cancellation lands in the block, not after
            # it: a block that ends first takes this back (`finish`).
            self.late = self.task.get_loop().call_soon(self.expire)

    def expire(self) -> None:
        """Past due: the task is cancelled, unless it has finished."""
        self.late = None
        if not self.task.done():
            self.passed = True
            self.task.cancel()


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._pending: dict[Deadline, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> Deadline:
        """The current task's deadline, from now."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        loop = task.get_loop()
        deadline = Deadline(task, loop.time() + self.seconds)
        self._pending[deadline] = None
        # Another loop's timer (a test's, since closed) serves nothing here.
        if self._timer is None or self._timer_loop is not loop:
            self._arm(loop, deadline.due)
        return deadline

    def caused(self, deadline: Deadline) -> bool:
        """Whether the cancellation being handled is the deadline's and no other's.

        Called where the task's CancelledError is caught: then the deadline's
        cancellation is taken back, and the task goes on to answer.
        """
        if not deadline.passed or deadline.settled:
            return False
        deadline.settled = True
        return deadline.task.uncancel() <= deadline.cancelling

    def finish(self, deadline: Deadline) -> None:
        """The block is done; the deadline's cancellation, if nobody caught it, is taken back."""
        self._pending.pop(deadline, None)
        if deadline.late is not None:
            deadline.late.cancel()
            deadline.late = None
        if deadline.passed and not deadline.settled:
            deadline.settled = True
            deadline.task.uncancel()

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer = loop.call_at(when, self._expire, loop)
        self._timer_loop = loop

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        while self._pending:
            deadline = next(iter(self._pending))
            ours = deadline.task.get_loop() is loop
            if ours and deadline.due > now:
                self._arm(loop, deadline.due)
                return
            del self._pending[deadline]
            # A task of another loop is left alone: that loop has stopped.
            if ours and not deadline.task.done():
                if deadline.held:
                    deadline.overdue = True
                else:
                    deadline.expire()
