"""The server driven by a client nobody here wrote: the official TypeScript SDK's, over stdio.

tests/js/client.mjs lists the tools, calls every store tool and a few failing ones, and prints a JSON summary.
`Client.callTool` there validates each result's structuredContent against the tool's output schema, so the
compacted schemas are checked by a third-party validator (ajv). Needs node and npm: without them the test
is skipped locally and fails in CI (when CI is set), so CI can't pass by not running it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_tool_schemas import ALL_TOOLS

JS_DIR = Path(__file__).parent / "js"
NPM_CI_TIMEOUT = 300
CLIENT_TIMEOUT = 120  # the whole script: a server start (~1 s, more on a loaded machine) and 15 calls


def node_and_npm() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the TypeScript client test in CI; install Node 18 or newer")
        pytest.skip("node and npm are not installed (this test fails instead when CI is set)")
    return node, npm


def installed_sdk(npm: str) -> None:
    if not (JS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True, timeout=NPM_CI_TIMEOUT
        )
        assert done.returncode == 0, f"npm ci failed in {JS_DIR}: {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node, npm = node_and_npm()
    installed_sdk(npm)
    db = tmp_path_factory.mktemp("ts") / "sessions.db"
    command = [node, "client.mjs", sys.executable, str(db)]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    assert done.returncode == 0, f"the TypeScript client failed: {done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def structured(summary: dict[str, Any], tool: str) -> list[dict[str, Any]]:
    return [call["structured"] for call in summary["calls"] if call["tool"] == tool]


def test_the_ts_client_lists_every_tool_with_an_output_schema_and_closed_inputs(summary: dict[str, Any]) -> None:
    assert [tool["name"] for tool in summary["tools"]] == list(ALL_TOOLS)
    for tool in summary["tools"]:
        assert tool["hasOutputSchema"] is True, tool["name"]
        assert tool["additionalProperties"] is False, tool["name"]


def test_every_store_tool_returns_what_its_output_schema_promises(summary: dict[str, Any]) -> None:
    """Each call below passed the TS client's own check of structuredContent against the output schema."""
    # run, summarize_session and continue_run call the model; cancel_run needs a paused run, which only run makes
    model_or_paused = {"run", "summarize_session", "continue_run", "cancel_run"}
    assert {call["tool"] for call in summary["calls"]} == set(ALL_TOOLS) - model_or_paused
    recorded, plain, member = structured(summary, "record_run")
    assert (member["parent_run_id"], member["agent_id"], member["steps"][0]["name"]) == (
        "ts-run-1",
        "researcher",
        "fetch",
    )
    assert member["attachments"][0]["mime_type"] == "image/png" and member["attachments"][0]["size"] == 70
    assert structured(summary, "fork_session")[0]["metadata"]["forked_from"]["session_id"] == "ts1"
    assert [call["tool_name"] for call in recorded["tool_calls"]] == ["weather", "clock"]
    assert recorded["tool_calls"][0]["result"] == {"temp": 21} and recorded["tool_calls"][1]["is_error"] is True
    assert recorded["metrics"]["input_tokens"] == 10 and plain["metrics"]["input_tokens"] is None
    first_page, everything = structured(summary, "list_sessions")
    assert isinstance(first_page["next_cursor"], str) and everything["total"] == 2
    named, unnamed = structured(summary, "get_session")
    assert named["agent"]["model"] == "claude-x" and unnamed["name"] is None and unnamed["agent"] is None
    assert structured(summary, "search_previous_sessions")[0]["results"]
    assert structured(summary, "update_session")[0]["name"] == "Renamed"
    assert structured(summary, "delete_session") == [{"session_id": "ts2", "deleted": True}]


def test_the_ts_clients_validator_refuses_a_result_of_the_wrong_shape(summary: dict[str, Any]) -> None:
    assert summary["rejectsWrongShape"] is True


def test_errors_reach_the_ts_client_as_one_sentence_tool_errors(summary: dict[str, Any]) -> None:
    missing, unknown, bad_id = summary["errors"]
    assert all(error["isError"] for error in summary["errors"])
    assert "No session 'ts2'" in missing["text"]
    assert unknown["text"].startswith("update_session has no argument 'made_up_flag'; remove it")
    assert "session_id" in bad_id["text"] and "record_run" in bad_id["text"]
