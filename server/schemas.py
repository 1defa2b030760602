"""Tool schemas a host can afford to send on every turn, and arguments checked against them.

pydantic's schemas carry a `title` on every field, wrap each optional field in `anyOf [T, null]` with
`default: null`, and keep docstring indentation; a host pays for all of it on every turn. Input and output
differ on null: an omitted input parameter needs no null branch, while a result field that can be null
must stay nullable, since clients (the TypeScript SDK's, for one) validate results against the output schema.
"""

import inspect
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import Tool as ListedTool
from pydantic import create_model

from .validation import RefusingUnknownArguments

Direction = Literal["input", "output"]

_NAMED_SCHEMAS = ("properties", "$defs", "patternProperties")
_SUBSCHEMA = ("items", "additionalProperties", "not", "contains")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NULL = {"type": "null"}
_DEFS = "#/$defs/"


def compact_tools(tools: Iterable[Tool]) -> None:
    """Compact the registered tools' descriptions and schemas, and make each refuse unknown arguments."""
    for tool in tools:
        tool.description = _prose(tool.description)
        arguments = _refusing_unknown(tool.fn_metadata.arg_model)
        tool.fn_metadata.arg_model = arguments
        tool.parameters = compact_schema(arguments.model_json_schema(by_alias=True), "input")
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact_schema(tool.fn_metadata.output_schema, "output")


def compact_schema(schema: dict[str, Any], direction: Direction) -> dict[str, Any]:
    """The schema in fewer characters: no titles, null defaults or `additionalProperties: true`, definitions
    used once written in place, model docstrings dropped, descriptions unwrapped, `integer` left out where
    `number` already allows it. An output schema keeps every field's type and nullability and its top-level
    `required` list; it drops defaults (every field of a result is sent), descriptions (the tool's description
    and the input's speak to the model) and the `required` lists of nested objects."""
    return _compact(_inline_single_use(schema), direction, root=True)


def _compact(schema: dict[str, Any], direction: Direction, root: bool = False) -> dict[str, Any]:
    compacted: dict[str, Any] = {}
    for key, value in _map_subschemas(schema, lambda sub: _compact(sub, direction)).items():
        if key == "title" or (key == "default" and value is None) or (key == "additionalProperties" and value is True):
            continue
        if direction == "output" and (key in ("default", "description") or (key == "required" and not root)):
            continue
        if key == "description" and isinstance(value, str):
            value = _prose(value)
        elif key == "type" and isinstance(value, list) and "number" in value:
            value = [kind for kind in value if kind != "integer"]
        compacted[key] = value
    compacted = _nullable_as_type(compacted)
    if root and direction == "input" and "properties" in compacted:
        # A parameter left out and one sent as null mean the same to the tool, so null is not offered; inside
        # an object argument null stays, since there it can mean something (update_session's agent: clear).
        omitted_is_null = {
            name for name, sub in schema["properties"].items() if "default" in sub and sub["default"] is None
        }
        compacted["properties"] = {
            name: _not_null(sub) if name in omitted_is_null else sub for name, sub in compacted["properties"].items()
        }
    return compacted


def _nullable_as_type(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [T, null]` as `type: [T, "null"]` where T is one plain type."""
    branches = schema.get("anyOf")
    if not branches or len(branches) != 2 or _NULL not in branches:
        return schema
    other = next(branch for branch in branches if branch != _NULL)
    if not isinstance(other.get("type"), str) or {"enum", "const", "$ref"} & other.keys():
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**other, **rest, "type": [other["type"], "null"]}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if _NULL in schema.get("anyOf", []) and len(schema["anyOf"]) == 2:
        return {**next(branch for branch in schema["anyOf"] if branch != _NULL), **rest}
    kinds = schema.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        kept = [kind for kind in kinds if kind != "null"]
        return {**schema, "type": kept[0] if len(kept) == 1 else kept}
    return schema


def _inline_single_use(schema: dict[str, Any]) -> dict[str, Any]:
    # A model's docstring is written for this code's readers; the field using the model describes it.
    definitions = {name: _undescribed(definition) for name, definition in schema.get("$defs", {}).items()}
    uses = Counter(_references(schema))
    kept = {name for name in definitions if uses[_DEFS + name] != 1}

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        name = str(node.get("$ref", "")).removeprefix(_DEFS)
        if name in definitions and name not in kept:
            node = {**definitions[name], **{key: value for key, value in node.items() if key != "$ref"}}
        return _map_subschemas(node, resolve)

    inlined = resolve({key: value for key, value in _undescribed(schema).items() if key != "$defs"})
    if kept:
        inlined["$defs"] = {name: resolve(definitions[name]) for name in sorted(kept)}
    return inlined


def _references(schema: dict[str, Any]) -> list[str]:
    found = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []

    def collect(sub: dict[str, Any]) -> dict[str, Any]:
        found.extend(_references(sub))
        return sub

    _map_subschemas(schema, collect)
    return found


def _prose(text: str) -> str:
    """A docstring as paragraphs of single lines: its indentation and line wrapping cost tokens, not meaning."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in inspect.cleandoc(text).split("\n\n"))


def _undescribed(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "description"}


def _map_subschemas(schema: dict[str, Any], change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """A copy of `schema` with `change` applied to each of its direct subschemas (not to values like enums)."""
    mapped: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            value = {name: change(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMA and isinstance(value, dict):
            value = change(value)
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            value = [change(sub) for sub in value]
        mapped[key] = value
    return mapped


def _refusing_unknown(arguments: type[ArgModelBase]) -> type[ArgModelBase]:
    return create_model(arguments.__name__, __base__=(RefusingUnknownArguments, arguments))


def tool_list_json(tools: Sequence[ListedTool]) -> str:
    """tools/list as a host passes it on: each tool by alias without empty fields, in compact JSON."""
    dumped = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    return json.dumps(dumped, separators=(",", ":"), ensure_ascii=False)
