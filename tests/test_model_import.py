"""The `anthropic` SDK is imported off the event loop, so the first `run` stalls no other call.

Each check runs in a fresh interpreter (the test process has long imported the SDK), with an
audit hook that records which thread imports `anthropic`.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.anthropic_double import MessagesDouble, text

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading

    import anyio
    from mcp import Client

    from mcp_server_sessions.server.app import build_server
    from mcp_server_sessions.server.settings import Settings

    importers = []

    def hook(event, args):
        if event == "import" and args[0] == "anthropic":
            importers.append(threading.get_ident())

    sys.addaudithook(hook)

    async def main():
        loop_thread = threading.get_ident()
        settings = Settings(db=sys.argv[1], user="alice", model="claude-test", model_timeout_s=5.0)
        async with Client(build_server(settings)) as client:
            session = await client.call_tool("start_session", {"session_id": "s1"})
            run = await client.call_tool("run", {"session_id": "s1", "message": "hello"})
        print(json.dumps({
            "run_ok": not run.is_error and not session.is_error,
            "imports": len(importers),
            "on_event_loop": loop_thread in importers,
        }))

    anyio.run(main)
    """
)


def run_fresh(db: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, db], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_sdk_is_imported_on_a_worker_thread_not_the_event_loop(tmp_path: Path) -> None:
    with MessagesDouble() as double:
        double.script(text("hi there"))
        env = {"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": double.base_url}
        result = run_fresh(str(tmp_path / "s.db"), env)
    assert result["run_ok"] is True
    assert result["imports"] == 1
    assert result["on_event_loop"] is False


def test_without_credentials_the_sdk_is_never_imported(tmp_path: Path) -> None:
    result = run_fresh(str(tmp_path / "s.db"), {"PATH": "/usr/bin:/bin"})
    assert result["imports"] == 0  # `run` refuses for want of a key before any import
    assert result["run_ok"] is False
