"""What the pipeline's one-shot agents are asked, and the planner's answer read: the
synthesizer's and the planner's prompts, the complaint sent back after a refused answer, the
task list parsed out of a planner's answer, and the refusal of an answer that is its prompt
printed back (an agent command such as ``cat``): a planner's that is the prompt's example
plan (``PLAN_EXAMPLE``), a synthesizer's that repeats the prompt's list of findings."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .._errors import ValidationError
from .._models import Finding, Synthesis
from .._prompts import EXAMPLE_REPEATED
from .plan import Plan, TaskItem, check_task_item

__all__ = [
    "CITATION",
    "FINDINGS_REPEATED",
    "PLAN_EXAMPLE",
    "PLAN_FORMAT",
    "TaskList",
    "citation_problem",
    "earlier_citations",
    "parse_task_list",
    "planner_prompt",
    "refusal_complaint",
    "repeats_findings",
    "synthesis_prompt",
]

ARRAY_SEARCH = 256 * 1024  # the last characters of a planner's answer searched for its array
ARRAY_TRIES = 2000  # '[' positions tried at most
NAMED = 5  # finding ids named in why an answer was refused
CITATION = re.compile(r"\[(f-[A-Za-z0-9_-]+)\]")  # "[f-...]", the form shown, is no id
# Why a synthesis holding the prompt's list of the pass's findings is refused: the prompt
# printed back (it cites every finding, so the citations alone would take it).
FINDINGS_REPEATED = "the answer repeats the prompt's list of findings"


def citation_problem(
    cited: Sequence[str], findings: Sequence[str], previous: Sequence[Synthesis] = ()
) -> str | None:
    """Why a synthesis citing ``cited`` is refused, ``findings`` being the pass's finding
    ids and ``previous`` the syntheses of the passes before it (in order); None when it is
    not: it cites at least one, and only those. An id an earlier synthesis cites is named
    as that pass's, with how an earlier pass's evidence is cited instead."""
    if not cited:
        return "it cited no finding"
    known = set(findings)
    unknown = [c for c in cited if c not in known]
    if not unknown:
        return None
    groups: list[str] = []
    earlier: set[str] = set()
    for number, synthesis in enumerate(previous, 1):
        theirs = [c for c in unknown if c in set(synthesis.sources)]
        if theirs:
            earlier.update(theirs)
            them = "it" if len(theirs) == 1 else "them"
            groups.append(
                f"{_few(theirs)} of pass {number} (its synthesis {synthesis.id} cites {them})"
            )
    rest = [c for c in unknown if c not in earlier]
    problems: list[str] = []
    if groups:
        problems.append(
            f"it cited {'; '.join(groups)}: an earlier pass's findings are not cited by "
            "their own ids but through that pass's synthesis, named by its id (s-...) "
            "without square brackets"
        )
    ours = f"the {len(findings)} finding(s) of this pass ({_few(findings)})"
    if rest:
        verb = "is" if len(rest) == 1 else "are"
        also = "and it cited" if groups else "it cited"
        problems.append(f"{also} {_few(rest)}, which {verb} not among {ours}")
    else:
        problems.append(f"cite only {ours}")
    return "; ".join(problems)


def refusal_complaint(problem: str) -> str:
    """What the synthesizer's next try is told about its refused answer."""
    return (
        f"\n\nYour previous answer was refused: {problem}. Cite the findings you rely on by "
        "their ids in square brackets, only ids of this pass's findings listed above, and at "
        "least one."
    )


def earlier_citations(text: str, number: int) -> str:
    """``text``, the synthesis of pass ``number``, as a later pass's synthesizer is shown it:
    its citations (``CITATION``'s form) rewritten as references to that pass's findings,
    "(pass 1 finding f-...)", which cite nothing when the later synthesis repeats them (its
    own citations may be only of its pass's findings)."""
    return CITATION.sub(lambda m: f"(pass {number} finding {m.group(1)})", text)


def _few(ids: Sequence[str]) -> str:
    shown = ", ".join(f"[{i}]" for i in ids[:NAMED])
    return shown if len(ids) <= NAMED else f"{shown} and {len(ids) - NAMED} more"


def _findings_listed(findings: Sequence[Finding]) -> str:
    """The findings of a pass as the synthesizer's prompt lists them, with their ids."""
    lines = [f"The findings of this pass ({len(findings)}):"]
    for f in findings:
        sources = f" (sources: {'; '.join(f.sources[:10])})" if f.sources else ""
        lines.append(f"- [{f.id}] {f.summary}{sources}")
    return "\n".join(lines)


def repeats_findings(text: str, findings: Sequence[Finding]) -> str | None:
    """``FINDINGS_REPEATED`` when the synthesis ``text`` holds the synthesizer prompt's list
    of ``findings`` whole (its heading and every line: the prompt printed back, which cites
    every finding), else None. The synthesizer's caller checks it before the citations
    (``citation_problem``)."""
    return FINDINGS_REPEATED if findings and _findings_listed(findings) in text else None


def synthesis_prompt(
    plan: Plan, index: int, findings: list[Finding], previous: list[Synthesis]
) -> str:
    """What the synthesizer of pass ``index`` is asked: the findings with their ids."""
    spec = plan.passes[index]
    lines = [
        f"You are the synthesizer of the research pipeline {plan.name!r}, pass "
        f"{index + 1} of {len(plan.passes)}: {spec.name!r}.",
    ]
    if plan.question:
        lines += ["", f"The question: {plan.question}"]
    for number, s in enumerate(previous, 1):  # ``previous`` holds passes 1, 2, ... in order
        lines += ["", f"The synthesis of {s.pass_name!r} ({s.id}):"]
        lines.append(earlier_citations(s.text, number))
    lines += ["", _findings_listed(findings)]
    lines += [
        "",
        "Write the synthesis of this pass: what its findings establish together about the "
        "question, what they contradict, what is still open. Cite each finding you rely on by "
        "its id in square brackets, as [f-...], citing only the ids of this pass's findings "
        'listed above. An earlier pass\'s findings (shown above as "(pass N finding f-...)") '
        "are not cited by their ids: to rest on what an earlier pass established, name its "
        "synthesis by its id (s-...), without square brackets. Answer with the synthesis text "
        "only (Markdown).",
    ]
    return "\n".join(lines) + "\n"


# The plan the planner's prompt shows as an example: an answer whose tasks hold it is the
# prompt printed back, refused (``parse_task_list``), not posted and paid for.
PLAN_EXAMPLE: list[Any] = ["Find X", {"description": "Check Y", "data": {"file": "a.md"}}]
PLAN_FORMAT = (
    "Answer with a JSON array of task descriptions only: strings, or objects "
    '{"description": "...", "data": {...}}, e.g. '
    + json.dumps(PLAN_EXAMPLE, ensure_ascii=False)
    + "."
)


def planner_prompt(plan: Plan, index: int, previous: list[Synthesis]) -> str:
    """What the planner of pass ``index`` is asked: its instruction, the question and the
    syntheses so far."""
    spec = plan.passes[index]
    lines = [
        f"You are the planner of the research pipeline {plan.name!r}, pass {index + 1} of "
        f"{len(plan.passes)}: {spec.name!r}. Each task you write is given to one worker, "
        "which reads the context and reports one finding.",
    ]
    if plan.question:
        lines += ["", f"The question: {plan.question}"]
    for s in previous:
        lines += ["", f"The synthesis of {s.pass_name!r} ({s.id}):", s.text]
    lines += ["", f"Your instruction: {spec.plan}", "", f"Write at most {spec.max_tasks} tasks."]
    lines += [PLAN_FORMAT]
    return "\n".join(lines) + "\n"


class TaskList(list[TaskItem]):
    """A planner's tasks (``parse_task_list``), and how many exact duplicates it dropped."""

    def __init__(self, items: Sequence[TaskItem] = (), dropped: int = 0) -> None:
        super().__init__(items)
        self.dropped = dropped

    @property
    def note(self) -> str:
        """What the planned line adds about the duplicates dropped ("" when none were)."""
        if not self.dropped:
            return ""
        return f" ({self.dropped} duplicate task{'s' * (self.dropped != 1)} dropped)"


def parse_task_list(text: str) -> TaskList:
    """The tasks in a planner's answer: a JSON array (the whole answer, a fenced block, or
    the last array in it) of strings or ``{"description", "data"}`` objects, each task once
    (an exact duplicate, description stripped and data alike, is dropped: counted in the
    list's ``dropped``). Raises ValueError saying what is wrong, ``EXAMPLE_REPEATED`` for
    an answer whose tasks hold every task of the prompt's example (``PLAN_EXAMPLE``)."""
    value = _last_array(text)
    if value is None:
        raise ValueError("it holds no JSON array")
    if not value:
        raise ValueError("the array is empty")
    items = _task_items(value)
    if all(example in items for example in _task_items(PLAN_EXAMPLE)):
        raise ValueError(EXAMPLE_REPEATED)
    kept: list[TaskItem] = []
    seen: set[str] = set()
    for item in items:
        key = json.dumps([item.description, item.data], sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return TaskList(kept, dropped=len(items) - len(kept))


def _task_items(value: list[Any]) -> list[TaskItem]:
    """The tasks of a planner's array, each checked as a stored task is."""
    items: list[TaskItem] = []
    for n, item in enumerate(value, 1):
        if isinstance(item, str) and item.strip():
            task = TaskItem(item.strip())
        elif (
            isinstance(item, dict)
            and isinstance(item.get("description"), str)
            and item["description"].strip()
            and set(item) <= {"description", "data"}
        ):
            task = TaskItem(item["description"].strip(), item.get("data"))
        else:
            raise ValueError(
                f'item {n} is neither a non-empty string nor a {{"description", "data"}} object'
            )
        try:  # refused now, the planner is asked again; once stored, every run would fail
            check_task_item(task.description, task.data)
        except ValidationError as exc:
            raise ValueError(f"item {n}: {exc}") from None
        items.append(task)
    return items


def _last_array(text: str) -> list[Any] | None:
    stripped = text.strip()
    for candidate in (stripped, *reversed(re.findall(r"```(?:json)?\s*\n(.*?)```", text, re.S))):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, list):
            return value
    decoder = json.JSONDecoder()
    found: list[Any] | None = None
    text = text[-ARRAY_SEARCH:]
    position = text.find("[")
    tries = 0
    while position != -1 and tries < ARRAY_TRIES:  # the last outermost array of strings, objects
        tries += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("[", position + 1)
            continue
        if isinstance(value, list) and value and all(isinstance(v, str | dict) for v in value):
            found = value
            position = text.find("[", end)
        else:
            position = text.find("[", position + 1)
    return found
