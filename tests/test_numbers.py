"""Numbers are bounded where they come in, and whatever was stored always reads back.

Maxima: 10**9 tokens per run (each count), 10**10 ms per duration, finite floats only; a
session's token totals saturate at 2**53 - 1 so JavaScript clients read them exactly.
"""

import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import ValidationError

from tests.anthropic_double import MessagesDouble, text
from tests.helpers import call_error, call_ok, table_counts
from tests.test_stdio_wire import raw_session

pytestmark = pytest.mark.anyio

MAX_TOKENS = 10**9
MAX_DURATION_MS = 10**10
MAX_TOTAL = 2**53 - 1
TOKEN_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens")
DURATION_FIELDS = ("duration_ms", "time_to_first_token_ms")
READ_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_session", {"session_id": "s1"}),
    ("list_sessions", {}),
    ("get_chat_history", {"session_id": "s1"}),
    ("get_tool_call_history", {"session_id": "s1"}),
    ("update_session", {"session_id": "s1", "state": {"touched": True}}),
    ("start_session", {"session_id": "s1"}),
]


async def refused(client: Client, db_path: Path, hints: tuple[str, ...], **arguments: Any) -> str:
    """record_run with `arguments` fails with one sentence naming every hint, and writes nothing."""
    before = table_counts(db_path)
    message = await call_error(client, "record_run", input="hi", output="ho", **arguments)
    assert table_counts(db_path) == before, message
    assert "Invalid argument" in message and "unexpectedly" not in message, message
    for hint in hints:
        assert hint in message, f"{hint!r} not in {message!r}"
    return message


def metrics_of(**figures: Any) -> dict[str, Any]:
    return {"session_id": "s1", "metrics": figures}


def tool_call_taking(duration_ms: Any) -> dict[str, Any]:
    return {"session_id": "s1", "tool_calls": [{"tool_name": "t", "duration_ms": duration_ms}]}


def execute(db_path: Path, sql: str, *params: Any) -> None:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute(sql, params)


async def all_reads_work(client: Client) -> dict[str, Any]:
    for tool, arguments in READ_CALLS:
        await call_ok(client, tool, **arguments)
    return await call_ok(client, "get_session", session_id="s1")


# -- bounds at input ---------------------------------------------------------------------------------------


async def test_huge_token_counts_are_refused_and_the_session_stays_readable(client: Client, db_path: Path) -> None:
    """Two runs of 2**63 - 1 tokens used to overflow the totals into a REAL that no read could parse."""
    await call_ok(client, "record_run", session_id="s1", input="a", output="b", metrics={"input_tokens": 5})
    for _ in range(2):
        await refused(client, db_path, ("metrics.input_tokens", "1000000000"), **metrics_of(input_tokens=2**63 - 1))
    session = await all_reads_work(client)
    assert session["metrics"]["input_tokens"] == 5


@pytest.mark.parametrize("field", TOKEN_FIELDS)
async def test_a_token_count_sqlite_cannot_hold_is_refused_naming_field_and_maximum(
    client: Client, db_path: Path, field: str
) -> None:
    """10**30 used to fail "unexpectedly ... retry", a retry that could never succeed."""
    await call_ok(client, "start_session", session_id="s1")
    await refused(client, db_path, (f"metrics.{field}", "1000000000"), **metrics_of(**{field: 10**30}))
    await refused(client, db_path, (f"metrics.{field}", "1000000000"), **metrics_of(**{field: MAX_TOKENS + 1}))
    run = await call_ok(client, "record_run", input="x", output="y", **metrics_of(**{field: MAX_TOKENS}))
    assert run["metrics"][field] == MAX_TOKENS


@pytest.mark.parametrize("field", DURATION_FIELDS)
async def test_durations_are_bounded(client: Client, db_path: Path, field: str) -> None:
    await call_ok(client, "start_session", session_id="s1")
    await refused(client, db_path, (f"metrics.{field}", "10000000000"), **metrics_of(**{field: MAX_DURATION_MS + 1}))
    await refused(client, db_path, (f"metrics.{field}",), **metrics_of(**{field: -1}))
    run = await call_ok(client, "record_run", input="x", output="y", **metrics_of(**{field: MAX_DURATION_MS}))
    assert run["metrics"][field] == MAX_DURATION_MS


async def test_tool_call_duration_is_bounded(client: Client, db_path: Path) -> None:
    await call_ok(client, "start_session", session_id="s1")
    hints = ("tool_calls.0.duration_ms", "10000000000")
    await refused(client, db_path, hints, **tool_call_taking(MAX_DURATION_MS + 0.5))
    run = await call_ok(client, "record_run", input="x", output="y", **tool_call_taking(MAX_DURATION_MS))
    assert run["tool_calls"][0]["duration_ms"] == MAX_DURATION_MS


async def test_session_totals_saturate_at_the_largest_exact_javascript_integer(client: Client, db_path: Path) -> None:
    await call_ok(client, "start_session", session_id="s1")
    execute(db_path, "UPDATE sessions SET input_tokens = ?, cache_write_tokens = ?", MAX_TOTAL - 10, MAX_TOTAL)
    figures = {"input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS, "cache_write_tokens": MAX_TOKENS}
    for _ in range(2):
        await call_ok(client, "record_run", input="x", output="y", **metrics_of(**figures))
    totals = (await all_reads_work(client))["metrics"]
    assert totals == {
        "input_tokens": MAX_TOTAL,
        "output_tokens": 2 * MAX_TOKENS,
        "total_tokens": MAX_TOTAL,
        "cache_read_tokens": 0,
        "cache_write_tokens": MAX_TOTAL,
    }


async def test_a_model_reporting_absurd_usage_still_gets_its_run_stored(
    agent_client: Client, double: MessagesDouble
) -> None:
    double.script(text("fine", input_tokens=2**62, output_tokens=MAX_TOKENS, cache_read_input_tokens=10**15))
    run = await call_ok(agent_client, "run", message="hi", session_id="s1")
    assert run["status"] == "completed"
    figures = [run["metrics"][field] for field in TOKEN_FIELDS]
    assert figures == [MAX_TOKENS, MAX_TOKENS, MAX_TOKENS, MAX_TOKENS, 0]
    totals = (await call_ok(agent_client, "get_session", session_id="s1"))["metrics"]
    assert [totals[field] for field in TOKEN_FIELDS] == [MAX_TOKENS, MAX_TOKENS, 2 * MAX_TOKENS, MAX_TOKENS, 0]


# -- stored rows always read back --------------------------------------------------------------------------


async def test_rows_outside_todays_bounds_written_by_an_older_version_stay_readable(
    client: Client, db_path: Path
) -> None:
    call = {"tool_name": "t", "duration_ms": 1.5}
    await call_ok(client, "record_run", session_id="s1", input="a", output="b", run_id="r1", tool_calls=[call])
    old_metrics = {"input_tokens": 10**30, "duration_ms": 1e300, "cost_usd": 0.25, "model": "m" * 300}
    old_agent = {"model": "claude-old", "num_history_runs": 500, "max_tokens": 10**7, "temperature": 0.2}
    execute(db_path, "UPDATE runs SET metrics = ?", json.dumps(old_metrics))
    execute(db_path, "UPDATE sessions SET input_tokens = ?, output_tokens = ?", 1.8e19, 2**63 - 1)
    execute(db_path, "UPDATE sessions SET agent = ?", json.dumps(old_agent))
    execute(db_path, "UPDATE tool_calls SET duration_ms = ?", float("inf"))

    session = await all_reads_work(client)
    assert session["metrics"]["input_tokens"] == session["metrics"]["output_tokens"] == MAX_TOTAL
    assert session["metrics"]["total_tokens"] == MAX_TOTAL
    assert session["agent"] == {
        "model": "claude-old",
        "system": None,
        "num_history_runs": 500,
        "max_tokens": 10**7,
        "auto_summary": False,
    }
    retry = await call_ok(client, "record_run", session_id="s1", input="a", output="b", run_id="r1")
    assert retry["metrics"]["input_tokens"] == 10**30  # a run's own figures pass through exactly
    assert retry["metrics"]["duration_ms"] == 1e300 and retry["metrics"]["model"] == "m" * 300
    assert "cost_usd" not in retry["metrics"]
    [stored_call] = (await call_ok(client, "get_tool_call_history", session_id="s1"))["tool_calls"]
    assert stored_call["duration_ms"] is None  # a non-finite float has no JSON form

    await call_ok(client, "record_run", session_id="s1", input="c", output="d", metrics={"input_tokens": 7})
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT typeof(input_tokens), input_tokens FROM sessions").fetchone() == (
            "integer",
            MAX_TOTAL,
        )


async def test_a_huge_integer_inside_state_round_trips_exactly(client: Client) -> None:
    big = {"n": 10**30, "neg": -(10**40), "nested": [2**64 + 1]}
    await call_ok(client, "start_session", session_id="s1", state=big, metadata=big)
    session = await call_ok(client, "get_session", session_id="s1")
    assert session["state"] == big and session["metadata"] == big


async def test_a_corrupt_row_is_an_unexpected_failure_not_an_invalid_argument(
    client: Client, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ValidationError raised while reading a row is not the caller's mistake."""
    await call_ok(client, "start_session", session_id="s1")
    execute(db_path, "UPDATE sessions SET agent = ?", json.dumps({"num_history_runs": "lots"}))
    for tool, arguments in READ_CALLS[:2]:
        with caplog.at_level(logging.ERROR):
            message = await call_error(client, tool, **arguments)
        assert "Invalid argument" not in message and "num_history_runs" not in message, message
        assert message.startswith(f"The {tool} tool failed unexpectedly"), message
        [logged] = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
        assert logged.exc_info and isinstance(logged.exc_info[1], ValidationError)
        caplog.clear()


# -- schemas -----------------------------------------------------------------------------------------------

CONSTRAINTS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern")


def subschemas(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(schema, dict):
        found.append((path, schema))
        for key, value in schema.items():
            found += subschemas(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += subschemas(value, f"{path}[{index}]")
    return found


def kinds_of(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("type", [])
    return [kinds] if isinstance(kinds, str) else list(kinds)


async def test_every_number_parameter_has_both_bounds(client: Client) -> None:
    tools = (await client.list_tools()).tools
    numbers = [
        (f"{tool.name}{path}", schema)
        for tool in tools
        for path, schema in subschemas(tool.input_schema)
        if set(kinds_of(schema)) - {"null"} in ({"integer"}, {"number"})  # not `result`, which is any JSON value
    ]
    assert len(numbers) > 10
    for where, schema in numbers:
        assert "minimum" in schema or "exclusiveMinimum" in schema, where
        assert "maximum" in schema or "exclusiveMaximum" in schema, where


async def test_output_schemas_carry_no_input_constraints(client: Client) -> None:
    """Stored data older than today's bounds must still match what the tools promise to return."""
    for tool in (await client.list_tools()).tools:
        for path, schema in subschemas(tool.output_schema):
            assert not set(CONSTRAINTS) & set(schema), f"{tool.name}{path}: {schema}"
            assert schema.get("additionalProperties") is not False, f"{tool.name}{path}"


async def test_tool_call_result_schema_is_any_json_value_with_a_type(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    schemas = [
        (name, direction, schema["properties"]["result"])
        for name, direction in (("record_run", "input"), ("record_run", "output"), ("get_tool_call_history", "output"))
        for _, schema in subschemas(getattr(tools[name], f"{direction}_schema"))
        if {"tool_name", "result"} <= set(schema.get("properties", {}))
    ]
    assert [(name, direction) for name, direction, _ in schemas] == [
        ("record_run", "input"),
        ("record_run", "output"),
        ("get_tool_call_history", "output"),
    ]
    for name, direction, schema in schemas:
        kinds = {"string", "number", "boolean", "object", "array", "null"}  # "number" covers integers
        assert set(schema["type"]) - {"integer"} == kinds, (name, direction, schema)
    for result in ("text", 3, 2.5, True, None, [1, "a"], {"k": {"v": [None]}}):
        run = await call_ok(
            client,
            "record_run",
            session_id="s1",
            input="x",
            output="y",
            tool_calls=[{"tool_name": "t", "result": result}],
        )
        assert run["tool_calls"][0]["result"] == result


# -- over stdio: JSON's non-standard Infinity and NaN literals -------------------------------------------------
# (only over a transport: the in-process client itself serializes float("inf") and float("nan") as null)

NON_FINITE = [
    (arguments, literal)
    for literal in ("Infinity", "-Infinity", "NaN")
    for arguments in (
        {"metrics": {"duration_ms": "<N>"}},
        {"metrics": {"time_to_first_token_ms": "<N>"}},
        {"tool_calls": [{"tool_name": "t", "duration_ms": "<N>"}]},
    )
]


async def test_infinity_and_nan_literals_over_stdio_are_refused_not_stored_as_null(db_path: Path) -> None:
    with anyio.fail_after(60):
        async with raw_session(db_path) as session:
            for request_id, (extra, literal) in enumerate(NON_FINITE, start=1):
                params = {"name": "record_run", "arguments": {"session_id": "s1", "input": "x", "output": "y", **extra}}
                call = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
                await session.send(call.replace('"<N>"', literal))
            refusals = [await session.answer_to(request_id) for request_id in range(1, 1 + len(NON_FINITE))]
    for refusal, (extra, literal) in zip(refusals, NON_FINITE, strict=True):
        assert refusal["result"]["isError"] is True, (extra, literal, refusal)
        message = refusal["result"]["content"][0]["text"]
        assert "duration_ms" in message or "first_token_ms" in message, message
        assert "finite" in message, message
    assert table_counts(db_path)["runs"] == 0


async def test_a_huge_integer_inside_state_round_trips_exactly_over_stdio(db_path: Path) -> None:
    with anyio.fail_after(60):
        async with raw_session(db_path) as session:
            await session.call(1, "start_session", {"session_id": "s1", "state": {"n": 10**30}})
            await session.answer_to(1)
            await session.call(2, "get_session", {"session_id": "s1"})
            answer = await session.answer_to(2)
    assert answer["result"]["structuredContent"]["state"] == {"n": 10**30}
