"""What tools/list costs a host on every turn, and what the tools accept.

The size is measured as a host would send the list to its model: each tool dumped by alias without unset
fields, the list serialized as compact JSON (`tool_list_json`, the same measure as bench/tools_list.py).
"""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.schemas import tool_list_json
from mcp_server_sessions.server.settings import Settings
from tests.helpers import STORE_TOOLS, call_ok, table_counts
from tests.test_hostile_input import BASE, check_sentence, seed

pytestmark = pytest.mark.anyio

ALL_TOOLS = (*STORE_TOOLS, "cancel_run", "run", "summarize_session", "continue_run")
MAX_TOOLS_LIST_CHARS = 36_000
"""14 tools (11 until continue_run, cancel_run and fork_session, the session kinds, steps and attachments came)."""

# Valid arguments of every tool on the seeded session s1: only the made-up argument is wrong.
VALID = {
    **BASE,
    "cancel_run": {"run_id": "r1"},
    "run": {"message": "hello", "session_id": "s1"},
    "summarize_session": {"session_id": "s1"},
    "continue_run": {"run_id": "r1", "tool_results": [{"tool_call_id": "t1", "result": "done"}]},
}


async def listed(client: Client) -> list[dict[str, Any]]:
    return json.loads(tool_list_json((await client.list_tools()).tools))


def schema_nodes(schema: Any) -> list[dict[str, Any]]:
    """Every (sub)schema of a JSON schema; property and definition names are not schema keywords."""
    if not isinstance(schema, dict):
        return []
    nodes = [schema]
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            nodes += [node for sub in value.values() for node in schema_nodes(sub)]
        elif key in ("items", "additionalProperties"):
            nodes += schema_nodes(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            nodes += [node for sub in value for node in schema_nodes(sub)]
    return nodes


async def test_tools_list_costs_at_most_36000_characters(client: Client) -> None:
    size = len(tool_list_json((await client.list_tools()).tools))
    assert size <= MAX_TOOLS_LIST_CHARS, f"tools/list is {size:,} characters"


async def test_every_tool_keeps_its_output_schema_and_a_description_per_parameter(client: Client) -> None:
    tools = await listed(client)
    assert [tool["name"] for tool in tools] == list(ALL_TOOLS)
    for tool in tools:
        assert tool["description"] and "\n " not in tool["description"], tool["name"]
        assert tool["outputSchema"]["type"] == "object" and tool["outputSchema"]["properties"], tool["name"]
        for name, parameter in tool["inputSchema"]["properties"].items():
            assert parameter.get("description"), f"{tool['name']}.{name} has no description"


async def test_schemas_carry_no_titles_no_null_defaults_and_no_indented_text(client: Client) -> None:
    for tool in await listed(client):
        for schema in (tool["inputSchema"], tool["outputSchema"]):
            for node in schema_nodes(schema):
                assert "title" not in node, f"{tool['name']}: {node}"
                assert "default" not in node or node["default"] is not None, f"{tool['name']}: {node}"
                assert "\n " not in node.get("description", ""), f"{tool['name']}: {node['description']!r}"


async def test_optional_parameters_are_plain_types_and_nullable_results_stay_nullable(client: Client) -> None:
    tools = {tool["name"]: tool for tool in await listed(client)}
    assert tools["list_sessions"]["inputSchema"]["properties"]["user_id"]["type"] == "string"
    assert "anyOf" not in tools["record_run"]["inputSchema"]["properties"]["tool_calls"]
    # Inside an object argument null can mean something (update_session's agent: clear that setting): it stays.
    agent = tools["update_session"]["inputSchema"]["properties"]["agent"]
    assert agent["type"] == "object" and agent["properties"]["model"]["type"] == ["string", "null"]
    run = tools["record_run"]["outputSchema"]["properties"]
    assert run["content"]["type"] == ["string", "null"]
    assert tools["get_session"]["outputSchema"]["properties"]["agent"]["type"] == ["object", "null"]


async def test_input_schemas_refuse_additional_properties(client: Client) -> None:
    for tool in await listed(client):
        assert tool["inputSchema"]["additionalProperties"] is False, tool["name"]


async def test_results_validate_against_the_compacted_output_schemas(client: Client) -> None:
    schemas = {tool["name"]: tool["outputSchema"] for tool in await listed(client)}
    results = {
        "start_session": await call_ok(client, "start_session", session_id="s0", agent={"model": "m"}),
        "record_run": await call_ok(
            client,
            "record_run",
            session_id="s0",
            input="hi",
            output="hello",
            tool_calls=[{"tool_name": "t", "duration_ms": 1.5}],
            metrics={"input_tokens": 3},
        ),
        "get_chat_history": await call_ok(client, "get_chat_history", session_id="s0"),
        "get_tool_call_history": await call_ok(client, "get_tool_call_history", session_id="s0"),
        "search_previous_sessions": await call_ok(client, "search_previous_sessions", query="hello"),
        "list_sessions": await call_ok(client, "list_sessions"),
        "get_session": await call_ok(client, "get_session", session_id="s0"),
        "update_session": await call_ok(client, "update_session", session_id="s0", name="renamed"),
        "delete_session": await call_ok(client, "delete_session", session_id="s0"),
    }
    for tool, structured in results.items():
        jsonschema.validate(structured, schemas[tool])


@pytest.mark.parametrize("tool", ALL_TOOLS)
async def test_an_unknown_argument_is_refused_in_one_sentence_naming_it(
    client: Client, db_path: Path, tool: str
) -> None:
    await seed(client)
    before = table_counts(db_path)
    result = await client.call_tool(tool, {**VALID[tool], "made_up_flag": True})
    assert result.is_error, result.structured_content
    message = result.content[0].text  # type: ignore[union-attr]
    check_sentence(message)
    assert tool in message and "'made_up_flag'" in message, message
    assert "remove" in message.lower(), message
    assert table_counts(db_path) == before


async def test_an_unknown_argument_is_named_with_the_accepted_ones(client: Client) -> None:
    await seed(client)
    result = await client.call_tool("get_session", {"session": "s1", "colour": "blue"})
    message = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error
    check_sentence(message)
    assert "'colour'" in message and "'session'" in message and "session_id" in message, message


async def test_the_refusal_of_unknown_arguments_stays_short_whatever_their_names(client: Client) -> None:
    arguments = {"session_id": "s1", "x" * 1_000_000: 1, **{f"extra_{index}": index for index in range(5_000)}}
    result = await client.call_tool("get_session", arguments)
    message = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error
    check_sentence(message)
    assert len(message) < 1_000 and "more" in message, message[:300]


async def test_tools_list_in_the_same_order_and_bytes_across_servers(tmp_path: Path) -> None:
    listings = []
    for attempt in range(2):
        async with Client(build_server(Settings(db=str(tmp_path / f"{attempt}.db"), user="alice"))) as client:
            listings += [tool_list_json((await client.list_tools()).tools) for _ in range(2)]
    assert len(set(listings)) == 1
    assert [tool["name"] for tool in json.loads(listings[0])] == list(ALL_TOOLS)
