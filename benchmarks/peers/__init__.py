"""One module per task queue compared in the lifecycle benchmark.

Each defines a no-op task (it records when it started, nothing else), how to start the
library's own worker processes (``worker_commands``) and a producer that posts tasks.
Worker processes get ``BENCH_REDIS_URL`` and ``BENCH_RESULTS_DIR`` in their environment.
"""
