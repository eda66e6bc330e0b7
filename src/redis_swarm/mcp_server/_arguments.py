"""Tool arguments checked strictly, and their problems said in one plain line each.

The SDK builds each tool's argument model from its signature and checks a call against it
(``Tool.run`` -> ``FuncMetadata.validate_arguments``), but that model ignores arguments it does
not know, so ``claim_task(queue="q", leas_s=10)`` claimed with the default lease, silently; and
it reports a bad value as pydantic's dump (model name, error type, a link); and it took a
boolean for a number, so ``read_inbox(limit=true)`` read one message. Every tool is
registered as a ``StrictTool``: its model forbids unknown arguments (its input schema says so
too, ``additionalProperties: false``), refuses true or false for a number and takes only
true or false for a boolean (``NoFlagForANumber``: pydantic took ``"yes"``, ``"on"``, ``1``
and ``0`` for a flag, so ``list_agents(alive="no")`` listed the stale agents), and a call's
problems come back as the server's other errors do, one line per problem: ``wait_s: must be
at most 60 (got 100000)``. The MCP inspector's CLI sends every ``--tool-arg`` as a string:
a number written as one (``"10"``) is still taken, and so are the strings ``"true"`` and
``"false"`` for a boolean (no other). A whole number too big for pydantic's integers
(``1e300``) is handed on as the integer it is, so that the check of its range says the
range (pydantic said "Unable to parse input string as an integer, exceeded maximum size").
An integer longer than ``_MAX_INT_DIGITS`` digits, as a number or as a string, is refused
by its range without being read (Python reads no integer of over 4,300 digits, and said
"Exceeds the limit (4300 digits) for integer string conversion" where the range belonged),
or, for an argument whose range the tool checks itself (a priority), by its digits (the
tool, which reads it as a float, failed on one of over 308). A float (``1e300``) is read as
before.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, cast

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic import ValidationError as ArgumentsRefused
from pydantic_core import ErrorDetails, PydanticCustomError

from .._codec import dumps, integer_digits
from .._errors import SwarmError, ValidationError
from .._mcp_names import EVERY_TOOL_ROLE
from ._budget import clip
from ._render import described, failed_call, tool_error

__all__ = ["StrictTool", "argument_problems", "description_of"]


def _takes_a_number(annotation: Any) -> bool:
    """Whether a field of this type takes a number (int or float, optional or annotated)."""
    if annotation in (int, float):
        return True
    return any(_takes_a_number(arg) for arg in typing.get_args(annotation))


def _takes_an_integer(annotation: Any) -> bool:
    """Whether a field of this type takes an integer (optional or annotated)."""
    if annotation is int:
        return True
    return any(_takes_an_integer(arg) for arg in typing.get_args(annotation))


def _only_a_flag(annotation: Any) -> bool:
    """Whether a field of this type takes a boolean and nothing else but null."""
    if annotation is bool:
        return True
    members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and all(
        _only_a_flag(arg) for arg in members
    )


# The strings a boolean argument takes (the MCP inspector's CLI sends every argument as a
# string): JSON's words, nothing looser.
_FLAG_WORDS = {"true": True, "false": False}

# The most digits an integer argument is read with: any argument's range is far narrower,
# and Python reads none of over 4,300 digits (see the module). A longer one is refused by
# its range (``_too_long``), unread.
_MAX_INT_DIGITS = 100
_TOO_BIG: int = 10**_MAX_INT_DIGITS
# An integer written as a string, as pydantic reads one (a sign, digits, underscores).
_INT_TEXT = re.compile(r"\s*[+-]?[0-9_]+\s*")


def _too_long(value: Any) -> bool:
    """Whether ``value`` is an integer, or a string of one, of over ``_MAX_INT_DIGITS``
    digits."""
    if isinstance(value, int):
        return abs(value) >= _TOO_BIG
    return (
        isinstance(value, str)
        and len(value) > _MAX_INT_DIGITS
        and _INT_TEXT.fullmatch(value) is not None
        and sum(c.isdigit() for c in value) > _MAX_INT_DIGITS
    )


def _out_of_range(field: Any, value: Any) -> PydanticCustomError:
    """The refusal of an integer too long to read (``_too_long``) given for ``field``: by
    the bound of its range it is past, as pydantic would say it (``_MUST``), else (a range
    the tool checks itself: a priority's) by the digits an integer may have. (A float is
    no such integer: ``1e300`` is handed on, and its range said by the tool.)"""
    negative = value < 0 if isinstance(value, int) else value.strip().startswith("-")
    # (the bounds of a Field(ge=, le=): annotated-types' Ge and Le, read by their attribute,
    # that package being pydantic's, not one of ours)
    for bound in field.metadata:
        if negative and (ge := getattr(bound, "ge", None)) is not None:
            return PydanticCustomError("greater_than_equal", "must be at least {ge}", {"ge": ge})
        if not negative and (le := getattr(bound, "le", None)) is not None:
            return PydanticCustomError("less_than_equal", "must be at most {le}", {"le": le})
    return PydanticCustomError(
        "int_too_long",
        "must be an integer of at most {digits} digits",
        {"digits": _MAX_INT_DIGITS},
    )


class NoFlagForANumber(BaseModel):
    """A model that refuses true or false given for a number (pydantic takes them for 1 and
    0), takes only true or false (or the strings "true" and "false") for a boolean, and hands
    a whole number too big for pydantic's integers on as an integer (see the module): every
    tool's arguments (``StrictTool``) and the records a tool takes (``TaskInput``), one
    rule."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_flag_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, list | dict):  # (the cheap tests first)
            return value
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        if isinstance(value, bool):
            if _takes_a_number(field.annotation) and not _only_a_flag(field.annotation):
                raise PydanticCustomError("flag_for_number", "must be a number, not true or false")
            return value
        if _only_a_flag(field.annotation):
            if isinstance(value, str) and value in _FLAG_WORDS:
                return _FLAG_WORDS[value]
            raise PydanticCustomError("flag", "must be true or false")
        if isinstance(value, float) and value.is_integer() and _takes_an_integer(field.annotation):
            return int(value)  # (exact: 1e300 is a whole number; pydantic refused it unranged)
        if _too_long(value) and _takes_an_integer(field.annotation):
            raise _out_of_range(field, value)
        return value


class StrictTool(Tool):
    """A tool whose arguments must all be its own, and whose argument errors read plainly."""

    # The role of the server that offers it: its errors and descriptions (its own and its
    # arguments') are said in its words.
    role: str = EVERY_TOOL_ROLE

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],
        *,
        name: str,
        annotations: ToolAnnotations | None,
        role: str = EVERY_TOOL_ROLE,
    ) -> StrictTool:
        tool = cls.from_function(
            fn,
            name=name,
            description=described(description_of(fn), role),
            annotations=annotations,
            structured_output=False,
        )
        assert isinstance(tool, StrictTool)  # (from_function builds a cls)
        # The SDK gives no per-tool model config: the model it derived, subclassed to forbid
        # extra keys (pydantic merging the config) and to refuse a flag for a number, and the
        # schema clients see derived again.
        loose = tool.fn_metadata.arg_model
        config = {
            "model_config": ConfigDict(extra="forbid"),
            "__module__": loose.__module__,
        }
        strict = cast("type[BaseModel]", type(loose.__name__, (loose, NoFlagForANumber), config))
        tool.fn_metadata = tool.fn_metadata.model_copy(update={"arg_model": strict})
        tool.parameters = _described(strict.model_json_schema(by_alias=True), role)
        tool.role = role
        return tool

    async def run(
        self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False
    ) -> Any:
        # Checked here first (the SDK checks again, cheaply) because the SDK's own check turns
        # a refusal into pydantic's text before a tool could say it better.
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ArgumentsRefused as exc:
            problems = argument_problems(self.name, self.parameters, arguments, exc.errors())
            # The SDK's prefix of every tool error, so that this one reads like the others.
            refused = tool_error(ValidationError("\n".join(problems)), self.role)
            raise ToolError(failed_call(self.name, refused)) from exc
        try:
            return await super().run(arguments, context, convert_result)
        except UnexpectedToolError as exc:
            # A core error raised outside a tool's translating calls (a name checked before
            # the core is called): said as the others are, not as a bare "Error executing".
            if not isinstance(exc.__cause__, SwarmError):
                raise
            said = tool_error(exc.__cause__, self.role)
            raise ToolError(failed_call(self.name, said)) from exc.__cause__


def _described(schema: Any, role: str) -> Any:
    """A schema whose descriptions are said as ``role``'s server says them (``described``)."""
    if isinstance(schema, dict):
        return {
            key: described(value, role)
            if key == "description" and isinstance(value, str)
            else _described(value, role)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_described(item, role) for item in schema]
    return schema


def description_of(fn: Callable[..., Any]) -> str:
    """A tool's docstring as its description: without the source's indentation and line
    breaks (a client sends every tool's description to the model on every session, and the
    SDK sends the docstring as written), paragraphs kept."""
    paragraphs = inspect.cleandoc(fn.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


# What a value must be, by pydantic's error type (with its context's bounds).
_MUST: dict[str, str] = {
    "less_than_equal": "must be at most {le}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "greater_than": "must be more than {gt}",
    "too_short": "must hold at least {min_length}",
    "too_long": "must hold at most {max_length}",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "literal_error": "must be {expected}",
}
_KINDS = {
    "string": ("a string", "strings"),
    "integer": ("an integer", "integers"),
    "number": ("a number", "numbers"),
    "boolean": ("true or false", "booleans"),
    "array": ("a list", "lists"),
    "object": ("an object", "objects"),
}


def argument_problems(
    tool: str, schema: dict[str, Any], arguments: dict[str, Any], errors: Sequence[ErrorDetails]
) -> list[str]:
    """One line per problem of a call's ``arguments``: the argument (or the field in it), what
    it must be, and what it got; an unknown one with the names the tool takes."""
    lines: list[str] = []
    union_args: set[str] = set()
    for error in errors:
        loc = error["loc"]
        arg = str(loc[0]) if loc else ""
        top = schema.get("properties", {}).get(arg, {})
        if "anyOf" in top and _is_type_error(error):
            # A value of none of the union's types: one error per member, said once.
            if arg not in union_args:
                union_args.add(arg)
                lines.append(f"{arg}: must be {_kind(top, schema)} (got {_shown(arguments[arg])})")
            continue
        if "anyOf" in top and len(loc) > 1 and isinstance(loc[1], str):
            loc = (loc[0], *loc[2:])  # pydantic names the union member it tried: not a field
        lines.append(_problem(tool, schema, loc, error))
    return lines


def _problem(
    tool: str, schema: dict[str, Any], loc: tuple[int | str, ...], error: ErrorDetails
) -> str:
    where = _path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = list(_node(schema, loc[:-1], schema).get("properties", {}))
        if len(loc) == 1:
            return f"{where}: unknown argument; {tool} takes {', '.join(known) or 'no arguments'}"
        return f"{where}: unknown field; it has {', '.join(known)}"
    if kind == "missing":
        return f"{where}: required, not given"
    if _is_type_error(error):
        node = _node(schema, loc, schema)
        must = f"must be {_kind(node, schema)}" if node else _pydantic_words(error)
    elif kind in _MUST:
        bounds = {k: _number(v) for k, v in (error.get("ctx") or {}).items()}
        must = _MUST[kind].format(**bounds)
        if kind in ("too_short", "too_long"):
            must += (
                " item" if bounds.get("min_length", bounds.get("max_length")) == "1" else " items"
            )
    else:
        must = _pydantic_words(error)
    return f"{where}: {must} (got {_shown(error['input'])})"


def _is_type_error(error: ErrorDetails) -> bool:
    return error["type"].endswith(("_type", "_parsing")) or error["type"] == "int_from_float"


def _pydantic_words(error: ErrorDetails) -> str:
    """Pydantic's message, in the words of the others ("Input should be" -> "must be")."""
    return error["msg"].replace("Input should be", "must be").replace("Value error, ", "")


def _path(loc: tuple[int | str, ...]) -> str:
    """``tasks[0].queue``: where in the arguments a problem is."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _node(node: dict[str, Any], loc: Sequence[int | str], root: dict[str, Any]) -> dict[str, Any]:
    """The schema of what sits at ``loc`` ({} if the schema does not say)."""
    for part in loc:
        node = _deref(node, root)
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return _deref(node, root)


def _deref(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return found if isinstance(found, dict) else {}
    return node


def _kind(node: dict[str, Any], root: dict[str, Any], *, plural: bool = False) -> str:
    """What a schema accepts, in words: ``a string or a list of strings``."""
    node = _deref(node, root)
    if "anyOf" in node:
        kinds = [_kind(member, root, plural=plural) for member in node["anyOf"]]
        return " or ".join(dict.fromkeys(k for k in kinds if k != "null"))
    name = node.get("type")
    if name == "null":
        return "null"
    one, many = _KINDS.get(str(name), ("a JSON value", "JSON values"))
    if name == "array" and "items" in node:
        one, many = f"a list of {_kind(node['items'], root, plural=True)}", "lists"
    return many if plural else one


def _number(value: Any) -> str:
    """A schema's bound as written: a whole float as an integer (a lease's 2592000, not
    2.592e+06), another float in the short form."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: Any) -> str:
    if isinstance(value, int) and abs(value) >= _TOO_BIG:  # (maybe no str(): see the module)
        return f"a number of {integer_digits(value):,} digits"
    return clip(dumps(value), 80, "too long to show")
