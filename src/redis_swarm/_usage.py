"""What agent runs cost: one run's ``Usage`` as its CLI reported it, the sums of many, and
the one way every face shows them (``usd``, ``usage_line``, ``Money``)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._codec import Record
from ._errors import ValidationError

__all__ = [
    "FIGURES",
    "MONEY_DIGITS",
    "USD_MAX_PLACES",
    "USD_PLACES",
    "Money",
    "Sum",
    "Usage",
    "add_figures",
    "add_model_figures",
    "adds_up",
    "figure_json",
    "model_names",
    "no_figures",
    "plus",
    "shown_figures",
    "summed_figures",
    "unpriced_note",
    "usage_figures",
    "usage_line",
    "usd",
]


# The decimals of every cost shown, in every view: the same cost reads alike wherever it is
# (a pass's in ``swarm status --pass``, ``swarm pipeline status``, the budget's stop line).
USD_PLACES = 4
# The most decimals a cost is shown with ($0.000000000001); a smaller one, which no run costs
# (``Usage.cost_fault`` refuses it), reads in exponent form ($1.0e-13), never as zero.
USD_MAX_PLACES = 12


def usd(cost: float | None, unknown: str = "-") -> str:
    """A cost in US dollars as every face shows it, the one rule: ``USD_PLACES`` decimals,
    or as many more as a cost under half a hundredth of a cent needs not to read as zero (up
    to ``USD_MAX_PLACES``; a cost too small for them in exponent form: ``$1.0e-13``);
    ``unknown`` when no agent said what it cost (never "$0.0000", which would claim it was
    free)."""
    if cost is None:
        return unknown
    places = USD_PLACES
    if 0 < abs(cost) < 0.00005:
        places = max(places, min(USD_MAX_PLACES, 1 - math.floor(math.log10(abs(cost)))))
    shown = f"{cost:,.{places}f}"
    if cost and not shown.strip("-0.,"):  # (under $5e-13: two digits, as the decimals give)
        shown = f"{cost:.1e}"
    return "$" + shown


def unpriced_note(runs: int, unpriced: int, *, when_none: bool = False) -> str:
    """What a sum of money leaves out, said after it: `` (2 of 7 runs reported no cost)``
    when some of the ``runs`` it sums reported a cost and ``unpriced`` of them did not (the
    sum is then less than what was spent); "" when every run did, or none (then no cost is
    shown at all), unless ``when_none`` (after a "cost unknown": ``swarm run``'s last line
    says how many runs it knows nothing of). The one wording of it: ``swarm run``'s last
    line, a pipeline's totals."""
    if not unpriced or (unpriced >= runs and not when_none):
        return ""
    return f" ({unpriced} of {runs} runs reported no cost)"


def usage_line(usage: Usage | Mapping[str, Any] | None, /) -> str:
    """What agent runs cost, on one line as every face shows it: ``$0.0123 · 12,345 in
    (12,000 cached) / 678 out`` (the cached ones: how many of the input tokens were read from
    a prompt cache, said where known). The one formatter of a usage: given a ``Usage``, a
    sum of its figures (a mapping of ``cost_usd``, ``tokens_in``, ``cached_in``,
    ``tokens_out``; a figure missing from it is unknown), or None (nothing recorded: "cost
    unknown"). A cost nobody reported reads "cost unknown"; the tokens are left out when
    neither count was reported, and a missing one reads ``-``. The cost as ``usd`` says it."""
    if isinstance(usage, Usage):
        cost: float | None = usage.cost_usd
        tokens_in, tokens_out, cached_in = usage.tokens_in, usage.tokens_out, usage.cached_in
    elif isinstance(usage, Mapping):
        cost = usage.get("cost_usd")
        tokens_in, tokens_out = usage.get("tokens_in"), usage.get("tokens_out")
        cached_in = usage.get("cached_in")
    elif usage is None:
        cost = tokens_in = tokens_out = cached_in = None
    else:
        raise TypeError(
            f"usage_line takes a Usage, a mapping of its figures or None, not "
            f"{type(usage).__name__}"
        )
    line = usd(cost, unknown="cost unknown")
    if tokens_in is None and tokens_out is None:
        return line

    def count(n: float | None) -> str:  # (a sum of counts may be a float: 1500.0)
        return "-" if n is None else f"{int(n):,}"

    cached = "" if cached_in is None else f" ({int(cached_in):,} cached)"
    return f"{line} · {count(tokens_in)} in{cached} / {count(tokens_out)} out"


USAGE_MAX = 1e15  # no agent run costs this many USD or tokens: a bigger number is a misreading
USAGE_MAX_MODELS = 64  # the models one usage breaks its figures down by
USAGE_MIN_COST = 1e-12  # no run costs less but nothing: a smaller cost is a misreading too
_COST_RULE = "a number of US dollars, 0 or from 1e-12 to 1e15"
_COUNT_RULE = "a whole number of tokens from 0 to 1e15"
USAGE_COUNTS = ("tokens_in", "tokens_out", "cached_in")  # the figures that count tokens
LABEL_CHARS = 128  # the longest model name, session id or context version a record keeps


def _misfit(value: object, *, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    if not (math.isfinite(value) and 0 <= value <= USAGE_MAX):
        return True
    return whole and value != int(value)


@dataclass(frozen=True)
class Usage(Record):
    """What one agent run cost, as its CLI reported it (Claude Code's ``--output-format json``
    result, Codex's ``exec --json`` events) or its worker said (``parse``): the cost in USD
    (Claude only), every input token (``tokens_in``, cached ones included; ``cached_in`` of
    them read from a prompt cache), the output tokens, and per model (``models``: model ->
    cost_usd, tokens_in, cached_in, tokens_out) where the CLI breaks it down. ``source``
    names the format it was read from. None is unknown.

    What no run could report (``faults``: a negative, fractional or huge count, a cost that
    is no finite number, more cached tokens than input tokens; in ``models`` the same, an
    unknown field, and figures adding up to more than the run's) is refused wherever a
    caller gives it (ValidationError); the runner, reading an agent's output, which no user
    controls, keeps such a figure as unknown instead, and makes models that say more than
    the run agree with it (``reconciled``)."""

    source: str
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cached_in: int | None = None
    session_id: str | None = None
    models: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    @staticmethod
    def cost_fault(value: object) -> str | None:
        """None when ``value`` can be what a run cost; else what a cost must be."""
        if _misfit(value, whole=False):
            return _COST_RULE
        small = isinstance(value, int | float) and 0 < value < USAGE_MIN_COST
        return _COST_RULE if small else None

    @staticmethod
    def count_fault(value: object) -> str | None:
        """None when ``value`` can be a run's count of tokens; else what a count must be."""
        return _COUNT_RULE if _misfit(value, whole=True) else None

    @staticmethod
    def shown(value: object) -> str:
        """A figure as a message quotes it: its JSON (``-1``, ``"many"``, ``NaN``), cut short."""
        try:
            text = json.dumps(value, allow_nan=True, default=repr)
        except (TypeError, ValueError):  # keys JSON has no words for, a cycle
            text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    @classmethod
    def parse(cls, data: object, *, source: str = "reported") -> Usage:
        """The usage a worker gives as JSON (the CLI's ``--usage``, MCP's ``usage``): an
        object of this record's fields, ``source`` defaulting to ``"reported"``. Raises
        ValidationError for another shape, an unknown field or any of ``faults``."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict):
            raise ValidationError(
                f"usage must be a JSON object with any of {', '.join(names)}, got "
                f"{type(data).__name__}"
            )
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise ValidationError(
                f"usage has no field {', '.join(unknown)}: give any of {', '.join(names)}"
            )
        usage = cls.from_dict({"source": source, **data})
        faults = usage.faults()
        if faults:
            raise ValidationError("; ".join(faults))
        return usage

    def of_model(self, model: str | None) -> Usage:
        """This usage with its figures under ``model`` in ``models``, when its CLI broke
        them down by no model and the model is known otherwise (``swarm run --model``): a
        failed run's usage is summed on its task, which records no model (its finding
        would), and every view of the cost per model reads ``models``. As it is otherwise."""
        if not model or self.models:
            return self
        figures = {key: value for key in FIGURES if (value := getattr(self, key)) is not None}
        return dataclasses.replace(self, models={model[:LABEL_CHARS]: figures})

    def faults(self) -> list[str]:
        """What no run could report in these figures, each naming the figure and what to
        give instead ([] when nothing)."""
        out: list[str] = []

        def check(name: str, value: object, rule: str | None) -> None:
            if value is not None and rule is not None:
                out.append(f"usage {name} is {self.shown(value)}: give {rule}, or leave it out")

        check("cost_usd", self.cost_usd, self.cost_fault(self.cost_usd))
        for name in USAGE_COUNTS:
            value = getattr(self, name)
            check(name, value, self.count_fault(value))
        cached, total = self.cached_in, self.tokens_in
        counted = not self.count_fault(cached) and not self.count_fault(total)
        if cached is not None and total is not None and counted and cached > total:
            out.append(
                f"usage cached_in ({cached:,}) is more than tokens_in ({total:,}): tokens_in "
                "counts every input token, the cached ones included"
            )
        return out + self.model_faults()

    def model_faults(self) -> list[str]:
        """What no run could report in ``models``, each naming the model, the figure and
        what to give instead ([] when nothing): a figure as ``faults`` checks the run's, a
        field that is none of ``FIGURES``, more cached tokens than input tokens, and figures
        that contradict the run's (``models_beyond``)."""
        out: list[str] = []
        models: object = self.models
        if not isinstance(models, dict):
            return ["usage models must be an object: model -> {cost_usd, tokens_in, ...}"]
        if len(models) > USAGE_MAX_MODELS:
            out.append(f"usage names {len(models)} models; the limit is {USAGE_MAX_MODELS}")
        fields = ", ".join(FIGURES)
        for model, figures in models.items():
            if not isinstance(figures, dict):
                out.append(f"usage of {model} must be an object: {{{fields}}}")
                continue
            unknown = sorted(str(key) for key in figures if key not in FIGURES)
            if unknown:
                out.append(
                    f"usage of {model} has no field {', '.join(unknown)}: give any of {fields}"
                )
            for key in FIGURES:
                value = figures.get(key)
                rule = self.cost_fault(value) if key == "cost_usd" else self.count_fault(value)
                if value is not None and rule is not None:
                    out.append(
                        f"usage of {model}: {key} is {self.shown(value)}: give {rule}, or "
                        "leave it out"
                    )
            cached, given = figures.get("cached_in"), figures.get("tokens_in")
            counted = not self.count_fault(cached) and not self.count_fault(given)
            if cached is not None and given is not None and counted and cached > given:
                out.append(
                    f"usage of {model}: cached_in ({cached:,}) is more than tokens_in "
                    f"({given:,}): tokens_in counts every input token, the cached ones included"
                )
        if not out:
            for key, (parts, total) in self.models_beyond().items():
                out.append(
                    f"usage models' {key} add up to {self.shown(parts)}, more than the run's "
                    f"{key} ({self.shown(total)}): a model's figures are part of the run's; "
                    f"give the run's whole {key} (at least its models' sum)"
                )
        return out

    def models_beyond(self) -> dict[str, tuple[float, float]]:
        """The ``FIGURES`` whose sum over ``models`` says more than the run's figure (where
        the run's is known): figure -> (the models' sum, the run's). The
        breakdown of a run by model is part of it: beyond it, one of them is wrong, and a
        view showing both (a pass's cost, its cost per model) would contradict itself. A
        sum of costs is allowed the float noise of adding them (0.1 + 0.2 is not 0.3)."""
        out: dict[str, tuple[float, float]] = {}
        for key in FIGURES:
            total = getattr(self, key)
            given = [
                figures[key]
                for figures in self.models.values()
                if isinstance(figures, dict) and figures.get(key) is not None
            ]
            if total is None or not given:  # (unknown: the views say so, a lower bound)
                continue
            parts = sum(given)
            if parts > total * (1 + 1e-9 if key == "cost_usd" else 1):
                out[key] = (parts, total)
        return out

    def reconciled(self) -> tuple[Usage, list[str]]:
        """This usage as an agent's CLI printed it, made one a report takes (no
        ``model_faults``), and what was changed, a ``KIND: DETAILS`` line each (the runner
        keeps a run over the figures its CLI prints: no user controls them). A run's figure
        below its models' sum is raised to the sum: the run cost at least what its parts
        did (a budget counts the larger, and the pass's cost and its cost per model then
        agree). Anything else amiss in the models (an unknown field, more cached tokens than
        input ones) is left out of them."""
        notes: list[str] = []
        models = {
            name: {key: figures[key] for key in FIGURES if figures.get(key) is not None}
            for name, figures in self.models.items()
        }
        for name, figures in models.items():
            cached, given = figures.get("cached_in"), figures.get("tokens_in")
            if cached is not None and given is not None and cached > given:
                del figures["cached_in"]
                notes.append(f"usage of a model left out: {name}'s cached_in above its tokens_in")
        usage = dataclasses.replace(self, models=models)
        changed: dict[str, Any] = {}
        for key, (parts, total) in usage.models_beyond().items():
            # (a sum of money kept as every total keeps it, without the float noise of the
            # adding: $0.6 + $0.3 is 0.9, not 0.8999999999999999; a count as an integer)
            figure = figure_json(key, float(parts))
            changed[key] = figure
            if key == "cost_usd":  # (as every view says a cost, and a count)
                was, taken = usd(total), usd(figure)
            else:
                was, taken = f"{int(total):,}", f"{int(figure):,}"
            notes.append(
                f"usage figures below their models' sum, the sum taken: {key} {was} under "
                f"the models' {taken}"
            )
        usage = dataclasses.replace(usage, **changed)
        if usage.faults():
            # What no report takes, even so (the models' cached tokens above the run's input
            # ones once summed, a sum past the bounds): the run's figures as printed, no
            # breakdown, and no word of a sum taken. (``faults`` covers the models too.)
            notes = ["usage by model left out: it contradicts the run's figures"]
            usage = dataclasses.replace(self, models={})
        return usage, notes


# What a usage sums to (``cached_in``: of the input tokens, those read from a prompt cache).
FIGURES = ("cost_usd", "tokens_in", "cached_in", "tokens_out")
# A sum of float dollars carries noise (0.24000000000000002): rounded to this many
# significant digits (not decimal places, which made a sum of $1e-12 read $0.0000).
MONEY_DIGITS = 10


def plus(total: float | None, value: float | None) -> float | None:
    """A sum that stays None (unknown) until something known is added: unknown is not
    zero, and is never shown as ``$0.0000``."""
    if value is None:
        return total
    return value if total is None else total + value


def no_figures() -> dict[str, float | None]:
    return dict.fromkeys(FIGURES)


def add_figures(total: dict[str, float | None], figures: Mapping[str, Any]) -> None:
    """Add the ``FIGURES`` of a usage (or of one model in it) to ``total``: those it
    reports; one it does not report leaves the sum as it was (None if nothing said)."""
    for key in FIGURES:
        value = figures.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = plus(total[key], float(value))


def usage_figures(usage: Usage) -> dict[str, Any]:
    return {key: getattr(usage, key) for key in FIGURES}


def figure_json(key: str, value: Any) -> Any:
    """A summed figure as JSON shows it: a sum of money rounded to ``MONEY_DIGITS``
    significant digits, a token count as an integer, unknown (None) as null."""
    if isinstance(value, float) and key.endswith("cost_usd"):
        return float(f"{value:.{MONEY_DIGITS}g}")
    if isinstance(value, float) and (key.startswith("tokens_") or key == "cached_in"):
        return int(value)
    return value


def shown_figures(total: Mapping[str, float | None]) -> dict[str, Any]:
    """A sum of ``FIGURES`` (``add_figures``'s) as every total shows them (``figure_json``)."""
    return {key: figure_json(key, value) for key, value in total.items()}


def summed_figures(usages: Iterable[Usage | None]) -> dict[str, Any]:
    """The ``FIGURES`` of ``usages`` summed, as every total shows them (``figure_json``;
    None: no usage reported that figure)."""
    total = no_figures()
    for usage in usages:
        if usage is not None:
            add_figures(total, usage_figures(usage))
    return shown_figures(total)


def _breakdown(usage: Usage) -> dict[str, dict[str, Any]]:
    """``usage``'s per-model figures, where they are to be summed: none when its CLI gave
    none, or a breakdown that contradicts its run's figures (``Usage.model_faults``)."""
    return {} if not usage.models or usage.model_faults() else dict(usage.models)


def model_names(usage: Usage | None, model: str | None) -> list[str]:
    """The models under which a record's runs are summed (``add_model_figures``' rule): those
    of its usage's per-model figures, else its one model (a faulty breakdown of one model
    names it), else ``unknown``."""
    if usage is not None:
        if models := _breakdown(usage):
            return list(models)
        if usage.models and len(usage.models) == 1:
            return list(usage.models)
    return [model or "unknown"]


def add_model_figures(
    by_model: dict[str, dict[str, float | None]], usage: Usage, model: str | None
) -> None:
    """Add what one record of agent runs cost (``usage``; ``model``: the record's, where
    known) to ``by_model``'s sums per model: the per-model figures where the CLI gave them
    (their cached tokens too, where it split them: Claude's, Gemini's; else a run of one
    model has them all), else all of it under ``model`` (``unknown`` when none is known).
    The one rule of every cost per model: a pipeline's, a pass's (``Swarm.pass_costs``).
    A breakdown that contradicts its run's figures (``Usage.model_faults``: a record stored
    before they were checked) is not summed: all of it goes under its one model, if it names
    one, else as if it named none; the costs per model never say more than the total."""
    models = _breakdown(usage)
    if not models:
        only = model_names(usage, model)[0]
        add_figures(by_model.setdefault(only, no_figures()), usage_figures(usage))
        return
    for name, figures in models.items():
        shown: dict[str, Any] = dict(figures)
        if len(models) == 1 and "cached_in" not in figures:
            shown["cached_in"] = usage.cached_in
        add_figures(by_model.setdefault(name, no_figures()), shown)


def _shown(cost: float) -> Decimal:
    """``cost`` as ``usd`` shows it, to be added up as a reader would."""
    return Decimal(usd(cost).lstrip("$").replace(",", ""))


def adds_up(parts: Iterable[float | None], total: float | None) -> bool:
    """Whether the ``parts`` of a sum, shown as ``usd`` shows them, add up to ``total``
    shown so (parts nobody reported aside)."""
    if total is None:
        return True
    known = [p for p in parts if p is not None]
    return sum((_shown(p) for p in known), Decimal(0)) == _shown(total)


Sum = tuple[Sequence[float | None], float | None]  # a sum of money shown: its parts, its total


class Money:
    """How every view (a table, a tree, a line) shows costs: each as ``usd`` does, with its
    decimals, so that a cost reads alike in every view; a total whose parts shown above it
    do not add up to it as shown (each rounded apart) reads "≈$1.9496", the total being
    summed from the exact figures."""

    def __call__(self, cost: float | None) -> str:
        """A part: as ``usd`` shows it."""
        return usd(cost)

    def total(self, parts: Sequence[float | None], total: float | None) -> str:
        """A total of ``parts``, "≈" when they do not add up to it as shown."""
        mark = "" if adds_up(parts, total) else "≈"
        return mark + usd(total)

    def line(
        self, figures: Usage | Mapping[str, Any] | None, parts: Sequence[float | None] = ()
    ) -> str:
        """``figures`` (a usage, a sum of ``FIGURES``, or None: nothing recorded) as
        ``usage_line`` says them; with ``parts``: a total of them, as ``total``."""
        cost = figures.cost_usd if isinstance(figures, Usage) else (figures or {}).get("cost_usd")
        mark = "≈" if parts and not adds_up(parts, cost) else ""
        return mark + usage_line(figures)
