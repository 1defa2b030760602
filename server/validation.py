"""Refused arguments: unknown names refused, and one sentence naming the field and the fix.

Shared by the MCP tools' error boundary and the tools a model calls inside a run.
"""

from typing import Any

from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

ID_FIELDS = {"session_id", "user_id", "run_id", "exclude_session_id"}


class RefusingUnknownArguments(ArgModelBase):
    """Arguments that refuse names the tool does not have: a misspelled one would otherwise be ignored."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def refuse_unknown_arguments(cls, data: Any) -> Any:
        accepted = [field.alias or name for name, field in cls.model_fields.items()]
        unknown = [name for name in data if name not in accepted] if isinstance(data, dict) else []
        if unknown:
            names = {"unknown": unknown, "accepted": accepted}
            raise PydanticCustomError("unknown_argument", "unknown arguments", names)
        return data


def describe_validation(tool: str, error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    field = ".".join(str(part) for part in first["loc"]) or "arguments"
    name = str(first["loc"][0]) if first["loc"] else ""
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    if first["type"] == "unknown_argument":
        return describe_unknown(tool, first.get("ctx", {}))
    missing = [".".join(str(part) for part in p["loc"]) for p in problems if p["type"] == "missing"]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        if len(missing) > 1:
            return f"{tool} needs the arguments {names}; add them and call again."
        return f"{tool} needs the argument {names}; add it and call again."
    if first["type"] == "string_pattern_mismatch" and name in ID_FIELDS:
        reason = "must be 1 to 128 letters, digits or ._:@- characters"
    elif first["type"] == "string_unicode":
        reason = "must be valid Unicode text (it has an unpaired surrogate)"
    else:
        reason = first["msg"][0].lower() + first["msg"][1:]
        reason = reason.replace("input should", "should").replace("value error, ", "")
    return f"Invalid argument {field!r} for {tool}: {reason}{more}; fix it and call again."


MAX_NAMED_UNKNOWN = 5


def describe_unknown(tool: str, names: dict[str, list[str]]) -> str:
    """The refusal of unknown arguments, naming at most MAX_NAMED_UNKNOWN of them, each cut to 40 characters."""
    named = [repr(name) if len(name) <= 40 else repr(name[:40] + "…") for name in names["unknown"][:MAX_NAMED_UNKNOWN]]
    more = len(names["unknown"]) - len(named)
    unknown = ", ".join(named) + (f" and {more} more" if more else "")
    accepted = ", ".join(names["accepted"]) or "no arguments"
    if len(names["unknown"]) > 1:
        return f"{tool} has no arguments {unknown}; remove them and call again (it accepts {accepted})."
    return f"{tool} has no argument {unknown}; remove it and call again (it accepts {accepted})."
