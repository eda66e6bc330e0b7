"""Init prompts for agents: copy-paste-ready instructions for one install.

``render_prompt`` writes the prompt of a role (``worker``, ``shard``, ``coordinator``) for an
agent that talks to the swarm through the CLI, the MCP server or the Python API, tailored to
its client (Claude Code, Codex, or any other). ``render_task_prompt`` writes the prompt that
``swarm run`` gives an agent process for one claimed task.

Every command a CLI prompt tells an agent to run sits in a ```bash block, with the values the
agent must fill in written as ``<UPPER_CASE>`` placeholders; the test suite extracts those
blocks, fills the placeholders and runs them against a real server, so a prompt never tells
an agent to run a command that does not work.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Literal

from ._config import DEFAULT_HOME, Settings
from ._models import ContextInfo, Task

__all__ = [
    "CLIENTS",
    "DEFAULT_QUEUE",
    "FINDING_EXAMPLE",
    "ROLES",
    "VIAS",
    "finding_rules",
    "render_prompt",
    "render_task_prompt",
    "swarm_command",
]

Role = Literal["worker", "shard", "coordinator"]
Via = Literal["cli", "mcp", "python"]
Client = Literal["claude", "codex", "generic"]

ROLES: tuple[str, ...] = ("worker", "shard", "coordinator")
VIAS: tuple[str, ...] = ("cli", "mcp", "python")
CLIENTS: tuple[str, ...] = ("claude", "codex", "generic")
DEFAULT_QUEUE = "work"
SUMMARY_LIMIT = 2000  # the core's limit on a finding's summary (characters)

FINDING_EXAMPLE: dict[str, Any] = {
    "summary": "One paragraph: what you found, in plain words.",
    "details": "The facts behind the summary, quoted or paraphrased, with numbers.",
    "sources": ["context lines 120-134", "context lines 2210-2214"],
    "confidence": 0.8,
}


def __getattr__(name: str) -> Any:
    # MCP_TOOLS: the tools the MCP server exposes (``swarm mcp``), read from their @tool
    # markers on first use (it imports the MCP SDK); prompts for --via mcp name only these.
    if name == "MCP_TOOLS":
        from .mcp_server import TOOL_ROLES

        return tuple(TOOL_ROLES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def swarm_command(settings: Settings, *, show_password: bool = False) -> str:
    """``swarm`` with the options that reach this install's swarm, for a copy-paste command.

    Options are spelled out (rather than exported variables) because many agent shells do not
    keep variables from one command to the next. Defaults are left out.
    """
    parts = ["swarm"]
    if not _is_default_embedded(settings):
        parts += ["--url", shlex.quote(settings.render_url(mask=not show_password))]
    if settings.swarm != "default":
        parts += ["--swarm", settings.swarm]
    return " ".join(parts)


def _is_default_embedded(settings: Settings) -> bool:
    return settings.kind == "embedded" and settings.home == DEFAULT_HOME


def _password_note(settings: Settings, show_password: bool) -> str:
    if settings.password and not show_password:
        return (
            "\nThe server's password is masked as `***` in the commands below: replace it with "
            "the real password (ask the person who set up the swarm).\n"
        )
    return ""


def finding_rules(summary_limit: int = SUMMARY_LIMIT) -> str:
    """The finding format, as a prompt states it."""
    return (
        "A finding is one JSON object:\n"
        f"- `summary` (required, string, at most {summary_limit} characters): the answer, "
        "self-contained: the reader has not seen your work.\n"
        "- `details` (optional, string): the facts behind the summary: numbers, quotes.\n"
        "- `sources` (optional, list of strings): where in the context each fact came from "
        '(e.g. "context lines 120-134").\n'
        "- `confidence` (optional, number from 0 to 1): how sure you are.\n"
        "- any other key you need is kept as is."
    )


def _json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```"


def _bash(*lines: str) -> str:
    return "```bash\n" + "\n".join(lines) + "\n```"


def render_prompt(
    role: str,
    *,
    settings: Settings,
    queue: str | None = None,
    via: str = "cli",
    client: str = "generic",
    show_password: bool = False,
) -> str:
    """The init prompt of ``role`` for an agent using ``via`` from ``client``.

    ``settings`` says where the swarm is (the URL's password is masked unless
    ``show_password``); ``queue`` is the work queue the prompt uses (default ``work``).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if via not in VIAS:
        raise ValueError(f"unknown interface {via!r}: use one of {', '.join(VIAS)}")
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}: use one of {', '.join(CLIENTS)}")
    p = _Prompt(settings, queue or DEFAULT_QUEUE, client, show_password)
    render = {
        ("worker", "cli"): p.worker_cli,
        ("worker", "mcp"): p.worker_mcp,
        ("worker", "python"): p.worker_python,
        ("shard", "cli"): p.shard_cli,
        ("shard", "mcp"): p.shard_mcp,
        ("shard", "python"): p.shard_python,
        ("coordinator", "cli"): p.coordinator_cli,
        ("coordinator", "mcp"): p.coordinator_mcp,
        ("coordinator", "python"): p.coordinator_python,
    }[(role, via)]
    return render().strip() + "\n"


class _Prompt:
    """The texts, sharing what every prompt states about the install."""

    def __init__(self, settings: Settings, queue: str, client: str, show_password: bool) -> None:
        self.settings = settings
        self.queue = queue
        self.client = client
        self.show_password = show_password
        self.sw = swarm_command(settings, show_password=show_password)
        self.url = settings.render_url(mask=not show_password)

    # --- shared pieces

    def header(self, title: str, intro: str) -> str:
        from . import __version__

        return (
            f"# redis-swarm {title}\n\n{intro}\n\n"
            f"Swarm: `{self.settings.swarm}` on `{self.url}` (redis-swarm {__version__}).\n"
            + _password_note(self.settings, self.show_password)
        )

    def cli_rules(self) -> str:
        return (
            "## How to run the commands\n\n"
            "Run each command exactly as written, replacing only the `<UPPER_CASE>` "
            "placeholders (keep the quotes around them). Add `--json` to any command for "
            "machine-readable output. Exit codes: 0 ok; 1 error (the one-line message says "
            "what to do next); 2 bad usage; 3 nothing to claim, or a wait timed out.\n"
        )

    def mcp_setup(self, role: str, name: str | None = None) -> str:
        target = {"claude": "claude", "codex": "codex"}.get(self.client, "json")
        named = f" --name {name}" if name else ""
        install = f"{self.sw} mcp install --client {target} --role {role}{named}"
        if target == "json":
            how = (
                "If the `swarm` MCP server is not configured yet, print its configuration "
                "(the `mcpServers` entry most clients read, e.g. from `.mcp.json`), add it to "
                f"your client, and restart:\n\n{_bash(install)}"
            )
        else:
            file = "`claude mcp add`" if target == "claude" else "`~/.codex/config.toml`"
            how = (
                "If the `swarm` MCP server is not connected yet, set it up once with the "
                f"command below (it runs {file} for you), then restart the session:\n\n"
                f"{_bash(install + ' --write')}"
            )
        return (
            "## Connect\n\n"
            f"{how}\n\nYour MCP session is your identity in the swarm: it registers you as an "
            f"agent ({role}) and holds your leases. Every tool returns JSON; an error is one "
            "line saying what to do next. A result too long for one reply ends with a cursor: "
            "pass it back to the same tool (or to `next_page` when it says so).\n"
        )

    def python_setup(self) -> str:
        code = (
            "```python\n"
            "from redis_swarm import Swarm\n\n"
            f"swarm = Swarm({self.url!r}, swarm={self.settings.swarm!r})\n"
            "```"
        )
        return (
            "## Connect\n\n"
            "Use the Python API of redis-swarm (`pip install redis-swarm`), in a script or a "
            f"Python session:\n\n{code}\n\nEvery call raises a `redis_swarm.SwarmError` whose "
            "message says what to do next.\n"
        )

    def finding(self) -> str:
        return f"{finding_rules()}\n\nFor example:\n\n{_json_block(FINDING_EXAMPLE)}\n"

    # --- worker

    def worker_intro(self) -> str:
        spawned = {
            "claude": "You were started by a memory shard (for example as a Task-tool subagent). ",
            "codex": "You were started by a memory shard (for example through `codex exec`). ",
            "generic": "",
        }[self.client]
        return self.header(
            "ephemeral worker",
            f"{spawned}You are an ephemeral worker: you claim ONE task from the queue "
            f"`{self.queue}`, read only the parts of the memory shard's context you need, "
            "report ONE finding, and stop. You will remember nothing afterwards: whatever is "
            "not in your finding is lost. Do not claim a second task.",
        )

    def worker_cli(self) -> str:
        sw = self.sw
        read = _bash(
            f"{sw} context info <SHARD>",
            f"{sw} context search <SHARD> '<WORDS_TO_FIND>' --around 3",
            f"{sw} context read <SHARD> --lines <FIRST_LINE>:<LAST_LINE>",
        )
        report = _bash(
            f"{sw} task report <TASK_ID> --token <TOKEN> --worker <WORKER_NAME> "
            "--finding - <<'EOF'",
            '{"summary": "<YOUR_SUMMARY>", "sources": ["<WHERE_IN_THE_CONTEXT>"], '
            '"confidence": 0.8}',
            "EOF",
        )
        return f"""
{self.worker_intro()}
{self.cli_rules()}
## 1. Claim one task

Pick a worker name for yourself (letters, digits, `.`, `_`, `-`), e.g. `worker-7`.

{_bash(f"{sw} task claim {self.queue} --worker <WORKER_NAME> --wait 10 --json")}

Exit code 3 means there is no task: say so and stop. Otherwise the JSON is the task: note its
`id` (<TASK_ID>), `token` (<TOKEN>, your lease), `description` and `data` (what to do),
`pass_name`, `parent` (<SHARD>, the memory shard whose context you read) and `lease_s` (seconds
before the task goes back to the queue unless you renew it).

## 2. Read what you need of the shard's context

The context can be far larger than your window: look at its size, search it, and read only
the line ranges you need.

{read}

Search takes `--regex` for a regular expression. `context get <SHARD>` prints the whole
context: use it only when the size allows.

## 3. Keep your lease while you work

If your work takes longer than about half of `lease_s`, renew the lease (it restarts from
now):

{_bash(f"{sw} task renew <TASK_ID> --token <TOKEN>")}

## 4. Report one finding, then stop

{self.finding()}
Report it (the JSON between the `EOF` lines):

{report}

If you cannot do the task, give it back with the reason, so that another worker retries it:

{_bash(f"{sw} task fail <TASK_ID> --token <TOKEN> --error '<WHY_YOU_COULD_NOT>'")}

Then stop: your work is done.
"""

    def worker_mcp(self) -> str:
        return f"""
{self.worker_intro()}
{self.mcp_setup("worker")}
## 1. Claim one task

Call `claim_task` with `queue` = `"{self.queue}"` (and `wait_s` = 10 to wait for one). No task:
say so and stop. Otherwise note its `id`, `description`, `data`, `pass_name`, `parent` (the
memory shard whose context you read) and `lease_deadline`. Your session holds the lease: from
now on you name only the task id.

## 2. Read what you need of the shard's context

The context can be far larger than your window. Call `search_context` (`pattern`; the owner
defaults to your task's shard) to find where things are, then `read_context_lines` (`start`,
`end`) around the hits. `get_context` pages through all of it: only when it is small.

## 3. Keep your lease while you work

If the work may outlast `lease_deadline`, call `renew_task` (`task_id`) before it does.

## 4. Report one finding, then stop

{self.finding()}
Call `report_finding` with `task_id`, `summary`, and `details`, `sources`, `confidence` (other
keys go in `extra`). If you cannot do the task, call `fail_task` (`task_id`, `error` = why) so
that another worker retries it. Then stop: do not claim another task.
"""

    def worker_python(self) -> str:
        code = f"""```python
task = swarm.claim({self.queue!r}, worker="worker-7", wait_s=10)
if task is None:
    raise SystemExit("no task")
print(task.id, task.token, task.description, task.data, task.pass_name, task.parent)

# Read only what you need of the shard's context (task.parent owns it).
info = swarm.context_info(task.parent)
hits = swarm.search_context(task.parent, "words to find", around=3)
part = swarm.read_context(task.parent, lines=(1, 200))
print(info.tokens_est, [hit.line for hit in hits], part.text[:500])

# Long work: renew the lease before half of task.lease_s has passed.
swarm.renew(task.id, task.token)

finding = {{
    "summary": "One paragraph: what you found.",
    "sources": ["context lines 120-134"],
    "confidence": 0.8,
}}
swarm.report(task.id, task.token, finding, worker="worker-7",
             context_version=info.version)
# Cannot do it? swarm.fail(task.id, task.token, "why")  (another worker retries it)
```"""
        return f"""
{self.worker_intro()}
{self.python_setup()}
## Claim, read, report

{code}

{self.finding()}
Claim one task, report one finding, then stop.
"""

    # --- shard

    def shard_intro(self) -> str:
        return self.header(
            "memory shard",
            "You are a memory shard: a long-lived agent holding a big context. You publish it "
            "to the swarm, split the work of each pass into small tasks, let ephemeral "
            "workers do them (each reads what it needs of your context and reports one "
            "finding), then read their findings and write a synthesis citing them, and start "
            "the next pass. Workers forget; the swarm remembers.",
        )

    def spawn_workers(self) -> str:
        sw = self.sw
        worker_prompt = f"{sw} prompt worker --queue {self.queue} --for {self.client}"
        if self.client == "claude":
            exec_line = (
                f"{sw} run --queue {self.queue} --concurrency 5 --until-done "
                "--exec 'claude -p --allowedTools \"Bash(swarm:*)\"'"
            )
            how = (
                "Start one Task-tool subagent per task (up to 5 at once), giving each the "
                "worker prompt printed by the first command below. Or let `swarm run` start "
                "one `claude -p` process per task (the second command), which renews leases, "
                "collects the findings and retries the failures for you:"
            )
        elif self.client == "codex":
            exec_line = (
                f"{sw} run --queue {self.queue} --concurrency 5 --until-done --exec 'codex exec -'"
            )
            how = (
                "Give each worker the prompt printed by the first command below, or let "
                "`swarm run` start one `codex exec` process per task (the second command), "
                "which renews leases, collects the findings and retries the failures for you:"
            )
        else:
            exec_line = (
                f"{sw} run --queue {self.queue} --concurrency 5 --until-done "
                "--exec '<AGENT_COMMAND>'"
            )
            how = (
                "Give each worker the prompt printed by the first command below, or let "
                "`swarm run` start your agent command once per task with the task's prompt "
                "on its stdin (the second command), which renews leases, collects the findings "
                "and retries the failures for you:"
            )
        return f"{how}\n\n{_bash(worker_prompt, exec_line)}\n"

    def shard_cli(self) -> str:
        sw = self.sw
        q = self.queue
        join = _bash(
            f"{sw} agents register <SHARD_NAME> --role shard --model '<YOUR_MODEL>'",
            f"{sw} context publish '<CONTEXT_FILE>' --owner <SHARD_NAME> --source '<CONTEXT_FILE>'",
        )
        post_one = _bash(
            f"{sw} task post {q} '<TASK_DESCRIPTION>' --pass '<PASS_NAME>' --parent <SHARD_NAME>",
        )
        post_many = _bash(
            f"{sw} task post {q} --pass '<PASS_NAME>' --parent <SHARD_NAME> --jsonl - <<'EOF'",
            '{"description": "<TASK_DESCRIPTION>", "data": {"focus": "<FOCUS>"}}',
            '{"description": "<ANOTHER_TASK_DESCRIPTION>"}',
            "EOF",
        )
        wait = _bash(
            f"{sw} task wait --pass '<PASS_NAME>' --timeout 600",
            f"{sw} findings --pass '<PASS_NAME>' --shard <SHARD_NAME>",
        )
        synth = _bash(
            f"{sw} synth create --shard <SHARD_NAME> --pass '<PASS_NAME>' --all-findings "
            "--text - <<'EOF'",
            "<YOUR_SYNTHESIS>",
            "EOF",
        )
        presence = _bash(
            f"{sw} agents heartbeat <SHARD_NAME>",
            f"{sw} msg inbox <SHARD_NAME>",
        )
        return f"""
{self.shard_intro()}
{self.cli_rules()}
Pick your name (letters, digits, `.`, `_`, `-`), e.g. `shard-research`: it is <SHARD_NAME>
below, the owner of your context and the parent of your tasks.

## 1. Join the swarm and publish your context

{join}

Publish again whenever the context changes: workers read the new version, older findings
keep the version they read.

## 2. Post the tasks of a pass

One task per question a worker can answer alone from your context. Name the pass (e.g.
`Pass 1: Signal Capture`): it is <PASS_NAME> below.

{post_one}

Many at once, one JSON object per line (`description` required; `data`, `priority`,
`dedupe_key` optional):

{post_many}

## 3. Let workers do them

{self.spawn_workers()}
## 4. Wait for the pass, then read its findings

{wait}

`task wait` exits with 3 if the pass is not settled in time. Add `--json` to `findings` for
every field (`summary`, `details`, `sources`, `confidence`, the `worker` and the
`context_version` it read). Tasks that failed every attempt are dead: see them with
`task list --status dead`, and `task requeue <TASK_ID>` one to run it again.

## 5. Write the synthesis of the pass

Read the findings, write what they add up to, and store it citing them (`--all-findings`
cites every finding of the pass; `--finding <FINDING_ID>` cites one, and may be repeated):

{synth}

Then start the next pass (step 2) with what you learned.

## 6. Stay present and read your messages

Between steps, send a heartbeat and read your inbox: the coordinator may ask you for a
synthesis.

{presence}
"""

    def shard_mcp(self) -> str:
        spawn = {
            "claude": "start one Task-tool subagent per task (up to 5 at once) and give each "
            "the worker prompt (the MCP prompt `worker_init`, or `swarm prompt worker --via mcp "
            f"--for claude --queue {self.queue}`)",
            "codex": "give each worker the worker prompt (the MCP prompt `worker_init`, or "
            f"`swarm prompt worker --via mcp --for codex --queue {self.queue}`)",
            "generic": "give each worker the worker prompt (the MCP prompt `worker_init`, or "
            f"`swarm prompt worker --via mcp --queue {self.queue}`)",
        }[self.client]
        return f"""
{self.shard_intro()}
{self.mcp_setup("shard", "<SHARD_NAME>")}
Pick your name (letters, digits, `.`, `_`, `-`), e.g. `shard-research`, and use it as
<SHARD_NAME> in the setup above: it owns your context and is the parent of your tasks, so it
must stay the same when the session restarts.

## 1. Publish your context

Call `publish_context` with `path` (a file: best for a big context) or `text`, and `source`
(where it came from). Publish again whenever it changes: workers read the new version, older
findings keep the version they read.

## 2. Post the tasks of a pass

Name the pass (e.g. `Pass 1: Signal Capture`). Call `post_tasks` once with every task of the
pass: each with `queue` = `"{self.queue}"`, a `description`, optional `data`, and `pass_name` =
the pass. (`post_task` posts one.) You are recorded as their parent.

## 3. Let workers do them

Ephemeral workers claim the tasks: {spawn}. Or run a pool from a shell, which starts an agent
process per task: `swarm run --queue {self.queue} --concurrency 5 --until-done --exec
'<AGENT_COMMAND>'`.

## 4. Wait for the pass, read its findings

Call `wait_for_pass` (`pass_name`, `timeout_s`) until it says `settled` (call it again when it
times out), then `list_findings` (`pass_name`); follow its cursor for the rest.

## 5. Write the synthesis

Call `synthesize` with `pass_name`, your `text`, and `sources` = the ids of the findings it
rests on. Then start the next pass.

## 6. Stay present

Between steps call `read_inbox`: the coordinator may ask you for a synthesis. `swarm_status`
shows the queues, agents and contexts.
"""

    def shard_python(self) -> str:
        code = f"""```python
shard = "shard-research"
swarm.register("shard", name=shard, model="your-model")
info = swarm.publish_context(shard, "context.md", source="context.md")

pass_name = "Pass 1: Signal Capture"
swarm.post_tasks([
    {{"queue": {self.queue!r}, "description": question, "pass_name": pass_name,
      "parent": shard}}
    for question in ["first question", "second question"]
])

# Workers claim and report (`swarm run --queue {self.queue} --exec ...`, or Task-tool subagents
# given `swarm prompt worker --via python`); meanwhile:
swarm.heartbeat(shard)
print(swarm.inbox(shard))

swarm.wait(pass_name=pass_name, timeout_s=600)
findings = list(swarm.findings(shard=shard, pass_name=pass_name))
for f in findings:
    print(f.id, f.confidence, f.summary)

swarm.synthesize(shard, pass_name, "What the findings add up to...",
                 sources=[f.id for f in findings])
```"""
        return f"""
{self.shard_intro()}
{self.python_setup()}
## One pass

{code}

`findings` returns one page (pass its `cursor` back for the next). Then start the next pass.
"""

    # --- coordinator

    def coordinator_intro(self) -> str:
        return self.header(
            "coordinator",
            "You are the coordinator: you watch the swarm (queues, agents, passes), notice "
            "what is stuck or dead, ask memory shards for syntheses when a pass is done, and "
            "message agents. You do not do tasks yourself.",
        )

    def coordinator_cli(self) -> str:
        sw = self.sw
        watch = _bash(
            f"{sw} agents register coordinator --role coordinator",
            f"{sw} status",
            f"{sw} agents",
            f"{sw} task list --queue {self.queue} --status dead",
            f"{sw} events --since 10m --limit 50",
        )
        passes = _bash(
            f"{sw} task wait --pass '<PASS_NAME>' --timeout 60",
            f"{sw} findings --pass '<PASS_NAME>'",
            f"{sw} synth list --pass '<PASS_NAME>'",
            f"{sw} synth request <SHARD_NAME> --pass '<PASS_NAME>' "
            "--instructions '<WHAT_TO_SYNTHESISE>'",
        )
        steer = _bash(
            f"{sw} task requeue <DEAD_TASK_ID>",
            f"{sw} msg send <AGENT_NAME> '<MESSAGE>' --from coordinator",
            f"{sw} msg broadcast '<MESSAGE>' --from coordinator",
            f"{sw} msg inbox coordinator",
        )
        return f"""
{self.coordinator_intro()}
{self.cli_rules()}
## Watch

{watch}

`status` counts the tasks of every queue by status and lists the agents and contexts.
`events --follow` streams every change as it happens (`--timeout` to stop).

## Passes, findings, syntheses

{passes}

## Fix and steer

{steer}

A dead task failed every attempt: read its `last_error` (`task show <DEAD_TASK_ID>`) before
requeueing it.
"""

    def coordinator_mcp(self) -> str:
        return f"""
{self.coordinator_intro()}
{self.mcp_setup("coordinator")}
## Watch

Call `swarm_status` for the queues (tasks by status), agents and contexts, and
`list_agents` for who is alive or stale and what each works on. `wait_for_pass`
(`pass_name`, a short `timeout_s`) tells whether a pass is settled.

## Passes, findings, syntheses

`list_findings` (`pass_name`) shows what workers reported. When a pass is done, ask its
shard for a synthesis with `request_synthesis` (`shard`, `pass_name`, `instructions`).

## Steer

`send_message` (`to` = an agent id, or `"*"` for every agent; `body`) and `read_inbox` for
your own messages. Post follow-up work with `post_task` (queue `"{self.queue}"`).
"""

    def coordinator_python(self) -> str:
        code = f"""```python
swarm.register("coordinator", name="coordinator")
print(swarm.queue_stats())                       # queue -> status -> count
for agent in swarm.agents():
    print(agent.id, agent.role, agent.alive, agent.current_task)
print(list(swarm.list_tasks(queue={self.queue!r}, status="dead")))

pass_name = "Pass 1: Signal Capture"
print(swarm.pass_stats(pass_name))
for f in swarm.findings(pass_name=pass_name):
    print(f.id, f.worker, f.summary)
swarm.request_synthesis("shard-research", pass_name, "Summarise the signals.",
                        sender="coordinator")
swarm.send("shard-research", "Pass 2 next, please.", sender="coordinator")
swarm.broadcast("Pausing for 5 minutes.", sender="coordinator")
print(swarm.inbox("coordinator"))
for event in swarm.events(limit=50):
    print(event.id, event.type, event.fields)
```"""
        return f"""
{self.coordinator_intro()}
{self.python_setup()}
## Watch and steer

{code}
"""


def render_task_prompt(
    task: Task,
    *,
    settings: Settings,
    context: ContextInfo | None = None,
    summary_limit: int = SUMMARY_LIMIT,
    finding_tags: tuple[str, str] | None = None,
) -> str:
    """The prompt ``swarm run`` gives the agent process it starts for one claimed ``task``.

    ``context`` is the ContextInfo of the shard's context (``task.parent``), when there is one.
    The process's environment holds SWARM_URL and SWARM_NAME, so commands are plain ``swarm``.
    ``finding_tags`` are the lines the agent is asked to put its finding between (made for
    this run, see ``_runner.finding``); without them it is asked for a fenced JSON block.
    """
    data = task.data
    lines = [
        f"You are an ephemeral worker of the swarm `{settings.swarm}`. Do this ONE task, then "
        "answer with ONE finding and stop. You will remember nothing afterwards: whatever is "
        "not in your finding is lost.",
        "",
        "## The task",
        "",
        f"- id: `{task.id}` (queue `{task.queue}`, attempt {task.attempts} of {task.max_attempts})",
    ]
    if task.pass_name:
        lines.append(f"- pass: {task.pass_name}")
    lines += ["", task.description.strip(), ""]
    if data not in (None, {}, [], ""):
        lines += ["Its data:", "", _json_block(data), ""]
    owner = task.parent
    if owner and context is not None:
        version = context.version
        lines += [
            "## The shard's context",
            "",
            f"The memory shard `{owner}` holds the context this task is about: "
            f"{context.size_bytes:,} bytes, about {context.tokens_est:,} tokens "
            f"(source: {context.source}, version `{version}`). Read only what you need: "
            "search it, then read the line ranges around the hits.",
            "",
            _bash(
                f"swarm context search {owner} 'words to find' --around 3 --version {version}",
                f"swarm context read {owner} --lines 1:200 --version {version}",
            ),
            "",
            "`search` takes `--regex`; `swarm context get "
            f"{owner} --version {version}` prints all of it (only if it fits your window).",
            "",
        ]
    elif owner:
        lines += [
            f"The task was posted by `{owner}`, which has not published a context: work from "
            "the description and data.",
            "",
        ]
    lines += [
        "## Your answer",
        "",
        finding_rules(summary_limit),
        "",
        (
            "End your answer with the finding as ONE fenced JSON block, like this:"
            if finding_tags is None
            else "End your answer with the finding: ONE JSON object like the one below, "
            f"between a line `{finding_tags[0]}` and a line `{finding_tags[1]}`. What is "
            "between those two lines is your finding, wherever else JSON appears in your answer."
        ),
        "",
        _json_block(FINDING_EXAMPLE),
        "",
        "Do not report it yourself: it is collected from your output. If you cannot do the "
        "task, say why in plain words and exit with a non-zero status; it will be retried.",
    ]
    return "\n".join(lines) + "\n"
