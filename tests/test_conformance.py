"""The official MCP conformance suite (npm @modelcontextprotocol/conformance) against the HTTP server.

tests/conformance/package.json pins the suite and the Node 22 it needs (npm's `node` package, whose binary
lands in tests/conformance/node_modules). The suite's server mode takes only a URL: it cannot send an
Authorization header, so the server runs anonymous on loopback (token checks are tested in the HTTP tests).
It runs every scenario it has (`--suite all`, pending ones included) and writes one checks.json per scenario.

Many scenarios call the reference server's own test tools, resources and prompts (`test_simple_text`,
`test://static-text`, ...) or a capability this server does not declare; NOT_APPLICABLE says why for each.
Every other scenario must pass: all its checks SUCCESS or INFO, at least one SUCCESS, no WARNING or FAILURE.
Needs node and npm (npm installs Node 22): without them the test is skipped locally and fails when CI is set.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.http_server import http_server

CONFORMANCE_DIR = Path(__file__).parent / "conformance"
MODULES = CONFORMANCE_DIR / "node_modules"
NODE_22 = MODULES / "node" / "bin" / "node"
SUITE = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSPECTOR = MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
NPM_CI_TIMEOUT = 300  # downloads Node 22 (~30 MB) on a fresh machine
SUITE_TIMEOUT = 120  # the 32 scenarios take ~3 s; each client request has the suite's own timeouts

APPLICABLE = (
    "server-initialize",  # initialize handshake and the initialized notification
    "ping",  # ping answers {}
    "tools-list",  # our 14 tools, each with a name, description and inputSchema
    "resources-list",  # the caller's sessions as session:// resources (none yet here): a well-formed list
    "prompts-list",  # resume_session, with its arguments
    "dns-rebinding-protection",  # a foreign Host/Origin is refused (421), the loopback one accepted
)

REFERENCE_TOOL = "calls the reference server's tool {}, which this server does not have"
NOT_APPLICABLE = {
    "logging-set-level": "this server declares no logging capability (it logs to stderr), so -32601 is correct",
    "completion-complete": "completes the reference prompt test_prompt_with_arguments; this server completes only "
    "session ids (of session://{session_id} and resume_session)",
    "tools-call-simple-text": REFERENCE_TOOL.format("test_simple_text")
    + "; it 'passes' only because its check accepts our 'Unknown tool' error result",
    "tools-call-image": REFERENCE_TOOL.format("test_image_content"),
    "tools-call-audio": REFERENCE_TOOL.format("test_audio_content"),
    "tools-call-embedded-resource": REFERENCE_TOOL.format("test_embedded_resource"),
    "tools-call-mixed-content": REFERENCE_TOOL.format("test_multiple_content_types"),
    "tools-call-with-logging": REFERENCE_TOOL.format("test_tool_with_logging") + ", after logging/setLevel",
    "tools-call-error": REFERENCE_TOOL.format("test_error_handling")
    + "; it 'passes' only because calling an unknown tool is itself an isError result",
    "tools-call-with-progress": REFERENCE_TOOL.format("test_tool_with_progress")
    + " (progress from run over HTTP is tested in the HTTP tests)",
    "tools-call-sampling": REFERENCE_TOOL.format("test_sampling") + "; no tool here asks the client to sample",
    "tools-call-elicitation": REFERENCE_TOOL.format("test_elicitation") + "; no tool here elicits",
    "elicitation-sep1034-defaults": REFERENCE_TOOL.format("test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": REFERENCE_TOOL.format("test_elicitation_sep1330_enums"),
    "json-schema-2020-12": REFERENCE_TOOL.format("json_schema_2020_12_tool") + " (pending in the suite)",
    "server-sse-polling": REFERENCE_TOOL.format("test_reconnection")
    + " and needs an Mcp-Session-Id; this server is stateless (pending in the suite)",
    "server-sse-multiple-streams": "needs an Mcp-Session-Id and stops without one; this server is stateless by design",
    "resources-read-text": "reads the reference resource test://static-text; this server serves only session://",
    "resources-read-binary": "reads the reference resource test://static-binary; this server serves only session://",
    "resources-templates-read": "reads the reference template test://template/{id}/data; this server's is session://{session_id}",
    "resources-subscribe": "this server declares resources.subscribe false and has no test://watched-resource",
    "resources-unsubscribe": "this server declares resources.subscribe false and has no test://watched-resource",
    "prompts-get-simple": "gets the reference prompt test_simple_prompt; this server's only prompt is resume_session",
    "prompts-get-with-args": "gets the reference prompt test_prompt_with_arguments; ours is resume_session",
    "prompts-get-embedded-resource": "gets the reference prompt test_prompt_with_embedded_resource; not here",
    "prompts-get-with-image": "gets the reference prompt test_prompt_with_image; ours is resume_session",
}

# What `conformance server -o DIR` names each scenario's folder: server-<scenario>-<ISO time with : and . as ->.
RESULT_DIR = re.compile(r"server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z")


def npm_path() -> str:
    """npm (and the node its install scripts run on); Node 22 itself comes from tests/conformance."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the conformance suite in CI; install Node 18 or newer")
        pytest.skip("node and npm are not installed (this test fails instead when CI is set)")
    return npm


def installed_suite(npm: str) -> None:
    if not (NODE_22.is_file() and SUITE.is_file() and INSPECTOR.is_file()):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=CONFORMANCE_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
        )
        assert done.returncode == 0, f"npm ci failed in {CONFORMANCE_DIR}: {done.stderr[-2000:]}"
    version = subprocess.run([NODE_22, "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert version.stdout.startswith("v22."), f"{NODE_22} is {version.stdout.strip()}, not Node 22"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each scenario's checks, from one run of the whole suite against a fresh anonymous loopback server."""
    installed_suite(npm_path())
    tmp = tmp_path_factory.mktemp("conformance")
    out = tmp / "results"
    with http_server(tmp, tmp / "sessions.db", "--allow-anonymous") as server:
        command = [NODE_22, SUITE, "server", "--url", server.mcp_url, "--suite", "all", "--output-dir", out]
        done = subprocess.run(command, capture_output=True, text=True, timeout=SUITE_TIMEOUT)
        server_log = server.stderr()
    # Exit 1 is expected: the not-applicable scenarios fail. Anything else is the suite itself failing.
    assert done.returncode in (0, 1), f"the conformance suite exited {done.returncode}:\n{done.stderr[-3000:]}"
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(out.iterdir()) if out.is_dir() else []:
        match = RESULT_DIR.fullmatch(folder.name)
        assert match, f"unexpected result folder {folder.name}"
        found[match["scenario"]] = json.loads((folder / "checks.json").read_text())
    assert found, f"the suite wrote no results:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{server_log[-3000:]}"
    return found


def test_every_scenario_of_the_suite_is_either_applicable_or_said_why_not(
    results: dict[str, list[dict[str, Any]]],
) -> None:
    assert not set(APPLICABLE) & set(NOT_APPLICABLE)
    assert sorted(results) == sorted([*APPLICABLE, *NOT_APPLICABLE])


@pytest.mark.parametrize("scenario", APPLICABLE)
def test_every_applicable_scenario_passes(results: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    checks = results[scenario]
    failed = [check for check in checks if check["status"] not in ("SUCCESS", "INFO")]
    assert not failed, json.dumps(failed, indent=2)[:3000]
    assert any(check["status"] == "SUCCESS" for check in checks), json.dumps(checks, indent=2)[:3000]
