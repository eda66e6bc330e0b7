"""Between A2A's messages, tasks and events and the swarm's records.

- A message becomes a task to post (``posting``): its text parts the description, its data
  parts the data, small inline files (``raw`` bytes) the data too, base64-encoded; a file by
  URL, or too big to inline, is refused with a message that says what to send instead. A
  message without a ``messageId`` (A2A 1.0 requires one), or with one too long for the
  task's dedupe key (``MAX_MESSAGE_ID_CHARS``), is refused: the id is what makes a retried
  SendMessage return the task it posted (the task's dedupe key, ``MESSAGE_KEY`` and the id,
  whatever the message's role: a retry that changed it, or that a version before roles were
  kept posted, still finds its task), and the key keeps the message's id for the task's
  history. A message must say whose it is (``role``, which A2A requires: ``ROLE_USER`` or
  ``ROLE_AGENT``); one without a role, or with another, is refused (the SDK read both as
  the user's). A message that is not the user's keeps its role in the task's data
  (``ROLE_KEY``: ``with_role``), where the workers see it too.
- A swarm task becomes an A2A ``Task`` (``a2a_task``): same id, its pass as the context id
  (``context_of``: a task posted without a pass, outside A2A, is a context of its own, its
  id, which holds that task alone: ``alone_in``), the state from ``_states``, its request
  as the history (with the client's message id, read from the dedupe key, and role, from
  the data; a task posted outside A2A, or by a version that kept neither, shows
  ``TASK-request`` and the user's role), and once completed its finding as the artifact (a
  text part with the summary, a data part with the whole finding). The status's timestamp
  is when the task took that status, as its record says it (``Task.status_since``:
  cancelled and dead-lettered tasks too); where a record stored by an older version does
  not say, the status has no timestamp rather than a wrong one.
- A task event becomes the A2A updates a stream or a webhook gets (``updates``). An event
  that says the task settled (completed, dead-lettered, cancelled) when its record says
  otherwise makes none (``belied``): any writer of the event stream may add one (a worker's
  user may), and the final state a client is told ends its stream and its pushes.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    SendMessageRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from .._codec import dumps, loads
from .._models import Event, Finding
from .._models import Task as SwarmTask
from .._models import TaskStatus as SwarmStatus
from .._validate import MAX_LABEL_CHARS
from ._request import ABSENT
from ._states import STATE_OF, STATUS_AFTER
from ._wire import whole_numbers
from ._words import OPERATOR_CONTEXT

__all__ = [
    "INLINE_FILE_BYTES",
    "MAX_MESSAGE_ID_CHARS",
    "MESSAGE_KEY",
    "ROLE_KEY",
    "SKILL_KEY",
    "UPDATES_PER_EVENT",
    "Posting",
    "a2a_task",
    "alone_in",
    "artifact_of",
    "belied",
    "context_of",
    "new_context",
    "posting",
    "status_of",
    "task_id_of",
    "updates",
    "with_role",
]

# The largest file part inlined into a task's data (base64 makes it a third bigger).
INLINE_FILE_BYTES = 256 * 1024
# The message (or request) metadata key that names the skill, i.e. the queue.
SKILL_KEY = "skill"
# The most updates one task event makes (``updates``): the completion's artifact, then its
# status. A stream position skips fewer than this many of an event (``_resume``).
UPDATES_PER_EVENT = 2
# The prefix of the dedupe key a message posts its task with, whatever its role (the key of
# every version); the message's id follows. A client that retries a SendMessage (same message
# id) gets the task it already posted, not a second one; and the key is where the task keeps
# the message's id, for its history.
MESSAGE_KEY = "a2a-message:"
# The namespace of the context ids made for messages sent without one (``new_context``).
_CONTEXTS = uuid.UUID("6f1d4a8e-3c2b-5e7f-9a10-a2a0c0e7e175")
# The longest messageId a message may have: its task's dedupe key must fit the swarm's limit.
MAX_MESSAGE_ID_CHARS = MAX_LABEL_CHARS - len(MESSAGE_KEY)
# The dedupe key's prefix, by role, of the one version that kept a message's role in the key
# (its agent's messages had one of their own, so a retry across roles posted twice): read for
# the history of the tasks it posted, never written.
_ROLE_KEYS_READ = {"a2a-agent-message:": Role.ROLE_AGENT}
# A task posted by a message that is not the user's holds {ROLE_KEY: its role, "data": the
# message's data} as its data (``with_role``), which says its role for its history; the
# user's keeps its data as it is, as tasks stored before roles were kept do.
ROLE_KEY = "a2aRole"
_DATA_KEY = "data"
# The roles a task's data may hold, by name (ROLE_UNSPECIFIED is read as the user's).
_ROLES = {Role.Name(role): role for role in (Role.ROLE_USER, Role.ROLE_AGENT)}


@dataclass(frozen=True)
class Posting:
    """What ``SendMessage`` posts: one task of ``queue``."""

    queue: str
    description: str
    data: Any
    context_id: str
    dedupe_key: str
    task_id: str  # (``task_id_of`` the message's id)


def posting(request: SendMessageRequest, queues: Sequence[str], sent_role: Any = None) -> Posting:
    """The task ``request`` posts. ``sent_role``: the message's ``role`` as the client sent
    it (``_request.raw_param``), to name in a refusal; None where it is not known. A message
    without a context id starts a new one (``new_context``)."""
    if not request.HasField("message"):
        raise InvalidParamsError(
            "the request has no message: SendMessage posts its message as a task; send one "
            "(params.message) with a text part that says what to do"
        )
    message = request.message
    if not message.message_id.strip():
        raise InvalidParamsError(
            "the message has no messageId, which A2A 1.0 requires: give each message a new "
            "unique id (a UUID), and the same one when you send it again, so that the retry "
            "gets the task the first one posted instead of posting a second"
        )
    if len(message.message_id) > MAX_MESSAGE_ID_CHARS:
        raise InvalidParamsError(
            f"the messageId is {len(message.message_id)} characters long; the limit is "
            f"{MAX_MESSAGE_ID_CHARS}: give each message a shorter unique id (a UUID is 36), "
            "the same one when you send it again"
        )
    _check_role(message.role, sent_role)
    queue = _skill(request, queues)
    texts: list[str] = []
    data: list[Any] = []
    for n, part in enumerate(message.parts):
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            # (a Struct's numbers are doubles: 3 arrives 3.0; whole ones are ints again, as
            # the answers write them: ``_wire``. Beyond 2**53 they lost digits already.)
            data.append(whole_numbers(MessageToDict(part.data)))
        elif kind == "raw":
            data.append(_inline_file(n, part))
        elif kind == "url":
            raise ContentTypeNotSupportedError(
                f"part {n} is a file by URL ({part.url[:80]}): the swarm's workers may not "
                "reach it; send its content as a text or data part, or as raw bytes up to "
                f"{INLINE_FILE_BYTES} bytes"
            )
    description = "\n\n".join(t for t in texts if t.strip())
    if not description:
        raise InvalidParamsError(
            "the message has no text: its text parts become the task's description, "
            "so send at least one that says what to do"
        )
    payload: Any = None if not data else data[0] if len(data) == 1 else data
    context_id = message.context_id or new_context(message.message_id)
    dedupe_key = MESSAGE_KEY + message.message_id
    task_id = task_id_of(message.message_id, queues)
    sent = with_role(payload, message.role)
    return Posting(queue, description, sent, context_id, dedupe_key, task_id)


def new_context(message_id: str) -> str:
    """The context id a message without one starts: a UUID, the same for a retry of the
    message (same messageId), so that the retry is the same post as the first (the task its
    id names, ``task_id_of``, in the same pass)."""
    return str(uuid.uuid5(_CONTEXTS, message_id))


def task_id_of(message_id: str, queues: Sequence[str]) -> str:
    """The id of the task a message of ``message_id`` posts through a server of ``queues``
    (its skills): the same for every message of that id, whatever skill it names, on every
    server exposing those skills (replicas behind one address). The dedupe key finds a
    retry's task in its own queue only (the swarm keeps dedupe keys per queue); a post under
    this id whose task is stored otherwise (another skill) is refused by the swarm
    (Conflict: the handler reads the stored task and says so). Servers of other skills make
    other ids, so one's client cannot use up another's message ids. A digest: any messageId
    makes a valid task id, of the length of the swarm's own."""
    named = "\n".join((MESSAGE_KEY + message_id, *sorted(set(queues))))
    digest = hashlib.sha256(named.encode()).digest()
    return "t-" + base64.b32encode(digest).decode().lower()[:24]


def _check_role(role: int, sent: Any) -> None:
    """Refuse a message whose role is none of A2A's (the SDK reads a role left out, and a
    name it does not know, as ROLE_UNSPECIFIED; a number it does not know stays that
    number): the server cannot tell whose it is. ``sent`` is the role as sent, if known."""
    if role in _ROLES.values():
        return
    if sent is None or sent is ABSENT:
        said = "the message has no role" if not role else f"the message's role {role} is unknown"
    else:
        said = f"the message's role {dumps(sent)[:40]} is not one of A2A's"
        if isinstance(sent, str) and f"ROLE_{sent.upper()}" in _ROLES:
            said += f' ("{sent}" is A2A 0.3\'s name for "ROLE_{sent.upper()}")'
    allowed = " or ".join(f'"{name}"' for name in _ROLES)
    raise InvalidParamsError(
        f"{said} (message.role, which A2A requires): send {allowed} (a client's own message "
        "is ROLE_USER)"
    )


def with_role(data: Any, role: Role) -> Any:
    """The data of the task a message of ``role`` (ROLE_USER or ROLE_AGENT: ``posting``
    refuses any other) posts with ``data``: as it is for the user's, else with its role
    (``ROLE_KEY``). User data that reads as such a pair is wrapped too, so that it reads
    back as it was sent (``_sent_as``)."""
    if role == Role.ROLE_USER and _role_of(data) is None:
        return data
    return {ROLE_KEY: Role.Name(role), _DATA_KEY: data}


def _role_of(data: Any) -> Role | None:
    """The role a task's data holds (``with_role``), if it holds one."""
    if not isinstance(data, dict) or data.keys() != {ROLE_KEY, _DATA_KEY}:
        return None
    name = data[ROLE_KEY]
    return _ROLES.get(name) if isinstance(name, str) else None


def _sent_as(task: SwarmTask) -> tuple[str, Any, Role]:
    """The id, data and role of the message that posted ``task``: the id from its dedupe key,
    the role and data from its data (``with_role``). A task posted outside A2A, or by a
    version that kept no message id, shows ``TASK-request``; one that kept no role, the
    user's."""
    data, role = task.data, _role_of(task.data)
    if role is not None:
        data = task.data[_DATA_KEY]
    key = task.dedupe_key or ""
    for prefix, keyed_role in ((MESSAGE_KEY, role), *_ROLE_KEYS_READ.items()):
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix) :], data, keyed_role or Role.ROLE_USER
    return f"{task.id}-request", data, role or Role.ROLE_USER


# A JSON value's type, by the kind of the protobuf Value that holds it.
_JSON_TYPES = {
    "null_value": "null",
    "number_value": "a number",
    "bool_value": "a boolean",
    "struct_value": "an object",
    "list_value": "an array",
}


def _skill(request: SendMessageRequest, queues: Sequence[str]) -> str:
    for metadata in (request.message.metadata, request.metadata):
        if SKILL_KEY in metadata.fields:
            value = metadata.fields[SKILL_KEY]
            kind = value.WhichOneof("kind")
            if kind != "string_value":
                shown = dumps(whole_numbers(MessageToDict(value)))
                raise InvalidParamsError(
                    f"skill {shown[:60]} is {_JSON_TYPES.get(kind or '', 'no value')}: name the "
                    f"skill as a string, one of {', '.join(queues)}"
                )
            skill = value.string_value
            if skill not in queues:
                raise InvalidParamsError(
                    f"unknown skill {skill!r}: this agent's skills are {', '.join(queues)}"
                )
            return skill
    return queues[0]


def _inline_file(n: int, part: Part) -> dict[str, Any]:
    if len(part.raw) > INLINE_FILE_BYTES:
        raise ContentTypeNotSupportedError(
            f"part {n} is a file of {len(part.raw)} bytes: files are inlined into the task "
            f"up to {INLINE_FILE_BYTES} bytes; put a bigger one in a swarm context "
            f"{OPERATOR_CONTEXT} and name it in the text"
        )
    return {
        "file": part.filename or None,
        "media_type": part.media_type or None,
        "base64": base64.b64encode(part.raw).decode(),
    }


def _timestamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _agent_text(task_id: str, context_id: str, text: str) -> Message:
    return Message(
        message_id=f"{task_id}-status",
        task_id=task_id,
        context_id=context_id,
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
    )


def status_of(
    task: SwarmTask, status: SwarmStatus | None = None, at: int | None = None
) -> TaskStatus:
    """The A2A status of ``task`` (or of ``status``, at ``at``, for an event): failed
    carries the reason the task was dead-lettered. Its timestamp is ``at``, else the task's
    ``status_since``; none when neither is known."""
    status = status or task.status
    when = at if at is not None else task.status_since if status == task.status else None
    state = STATE_OF[status]
    out = TaskStatus(state=state)
    if when:
        out.timestamp.CopyFrom(_timestamp(when))
    if state == TaskState.TASK_STATE_FAILED:
        reason = task.dead_reason or task.last_error or "the task was dead-lettered"
        out.message.CopyFrom(_agent_text(task.id, context_of(task), reason))
    return out


def artifact_of(finding: Finding) -> Artifact:
    whole = ParseDict(loads(dumps(finding.to_dict())), Value())
    return Artifact(
        artifact_id=finding.id,
        name="finding",
        description="the worker's finding: its summary, and the whole finding as data",
        parts=[Part(text=finding.summary), Part(data=whole, media_type="application/json")],
    )


def context_of(task: SwarmTask) -> str:
    """The A2A context id of ``task``: its pass (a message's context id is the pass of the
    task it posts); a task posted without one, outside A2A, is a context of its own: its id.
    (A2A requires a context id on every update a stream or a webhook gets.) Such a context
    holds that task alone (``alone_in``): ListTasks lists it, and SendMessage adds no task
    to it."""
    return task.pass_name or task.id


def alone_in(task: SwarmTask, context_id: str) -> bool:
    """True if ``context_id`` is ``task``'s context of its own (``context_of``: its id, for
    a task without a pass), not a pass's name."""
    return not task.pass_name and context_id == task.id


def _request_of(task: SwarmTask) -> Message:
    message_id, data, role = _sent_as(task)
    parts = [Part(text=task.description)]
    if data is not None:
        parts.append(Part(data=ParseDict(loads(dumps(data)), Value())))
    return Message(
        message_id=message_id,
        task_id=task.id,
        context_id=context_of(task),
        role=role,
        parts=parts,
    )


def a2a_task(task: SwarmTask, finding: Finding | None, *, at: int | None = None) -> Task:
    """The A2A view of a swarm task (its finding: the artifact of a completed one; ``at``:
    when it took its status, when the caller knows better than its record)."""
    out = Task(
        id=task.id,
        context_id=context_of(task),
        status=status_of(task, at=at),
        history=[_request_of(task)],
        metadata={SKILL_KEY: task.queue, "attempts": task.attempts},
    )
    if finding is not None:
        out.artifacts.append(artifact_of(finding))
    return out


def belied(event: Event, task: SwarmTask) -> SwarmStatus | None:
    """The settled status (completed, dead, cancelled) ``event`` says ``task`` took, when
    the task's record says another (a forged event, or one a later change undid: a dead
    task requeued since); else None. The record says the task's state: a client told a
    final state stops following the task."""
    status = STATUS_AFTER.get(event.type)
    if status is None or not status.settled or status == task.status:
        return None
    return status


def updates(
    event: Event, task: SwarmTask, finding: Finding | None
) -> list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
    """What an A2A client hears of one task event: nothing (a renewal, say, or an event
    the task's record belies: ``belied``), a status update, or, for the completion, the
    finding as an artifact and then the status."""
    status = STATUS_AFTER.get(event.type)
    if status is None or belied(event, task) is not None:
        return []
    if status == SwarmStatus.PENDING and task.status == SwarmStatus.DELAYED:
        status = SwarmStatus.DELAYED
    context_id = context_of(task)
    out: list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent] = []
    if status == SwarmStatus.COMPLETED and finding is not None:
        out.append(
            TaskArtifactUpdateEvent(
                task_id=task.id,
                context_id=context_id,
                artifact=artifact_of(finding),
                last_chunk=True,
            )
        )
    out.append(
        TaskStatusUpdateEvent(
            task_id=task.id,
            context_id=context_id,
            status=status_of(task, status, event.at),
        )
    )
    return out
