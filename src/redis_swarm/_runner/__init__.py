"""The ephemeral worker pool behind ``swarm run``.

For each task it claims, the pool starts the agent command once, in a process group of its
own, with the task's prompt on its stdin (or in a ``{prompt}`` / ``{prompt_file}``
placeholder). While the process runs the pool renews the task's lease; at the deadline, or
when the task is cancelled or its lease lost, it kills the whole group (the agent and anything
it started). When the process exits, the pool parses the finding from its output and reports
it, or fails the task with the exit code and the tail of stderr so that the queue retries it.
The process remembers nothing: that is the point. A command whose program the shell would
not find is refused before anything is claimed; one the shell still cannot run (exit code
127 or 126) gives its task back, not counted as a failure, and stops the pool.

- ``child``: one process (spawn, deadline, kill, bounded output capture);
- ``reaper``: what an agent left running outside its process group;
- ``guardian``: the process that kills the agents of a runner killed with SIGKILL;
- ``output``: its answer, cost and tokens in the agent CLI's format (text, Claude, Codex);
- ``.._finding_text``: the finding in its answer (the hooks read it there too);
- ``pool``: the slots' loop (``Runner``), built on ``pool_state`` (the options, the tally,
  drain, abort and the errors that stop the pool, the leases the slots hold, and the reports
  that wait for Redis through an outage), ``claiming`` (idle slots claiming together,
  the tasks handed over, the report that leases a slot's next task, ``max_tasks`` tickets),
  ``agent_runs`` (one agent run for a task, its lease renewed by ``lease_renewal``) and
  ``task_work`` (one task from its prompt to its report, failure or release);
- ``options`` (``RunOptions``) and ``outcomes`` (``TaskOutcome``: what became of a task);
- ``cancels``: one follower per pool of the event log's cancels, so that the agent of a
  cancelled task is killed within about a second, not at its next renewal;
- ``serve``: the same pool answering the questions of a shard's ask queue (``swarm serve``).
"""

from __future__ import annotations

from .._finding_text import finding_tags, normalize_finding, parse_finding
from .agent_runs import task_env
from .child import (
    Capture,
    ChildResult,
    Command,
    build_command,
    check_command,
    check_program,
    missing_program,
    run_child,
)
from .options import RunOptions, default_worker_prefix, slot_name
from .outcomes import GONE_WHY, REQUEUE_DEAD, OutcomeStatus, TaskOutcome
from .output import AgentOutput, quote_tail, read_output, warning_kind
from .pool import Runner
from .serve import ServeOptions, Server, session_command
from .task_work import cli_failure, failure_taken, run_failure

__all__ = [
    "GONE_WHY",
    "REQUEUE_DEAD",
    "AgentOutput",
    "Capture",
    "ChildResult",
    "Command",
    "OutcomeStatus",
    "RunOptions",
    "Runner",
    "ServeOptions",
    "Server",
    "TaskOutcome",
    "build_command",
    "check_command",
    "check_program",
    "cli_failure",
    "default_worker_prefix",
    "failure_taken",
    "finding_tags",
    "missing_program",
    "normalize_finding",
    "parse_finding",
    "quote_tail",
    "read_output",
    "run_child",
    "run_failure",
    "session_command",
    "slot_name",
    "task_env",
    "warning_kind",
]
