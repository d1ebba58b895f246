"""Background jobs: the runner, the relay to the queue, the schedule and the worker process."""
