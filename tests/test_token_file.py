"""The token file verifier on its own: a file that cannot be read refuses every token, and is read
again on the next request, even when nothing about it changed but its permissions (which a test
running as root cannot take away, so the failing read is simulated)."""

import logging
from pathlib import Path

import pytest

from mcp_server_sessions.server.auth import file_verifier
from mcp_server_sessions.server.auth.file_verifier import TokenFile
from mcp_server_sessions.server.auth.token_file import add_token

pytestmark = pytest.mark.anyio


async def test_a_file_that_cannot_be_read_is_read_again_on_the_next_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    token = add_token(path, "alice")
    verifier = TokenFile(path)
    real_read = file_verifier.read_token_file

    def denied(_: Path) -> list[object]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(file_verifier, "read_token_file", denied)
    with caplog.at_level(logging.WARNING):
        assert await verifier.verify_token(token) is None
        assert await verifier.verify_token(token) is None
    assert caplog.text.count("cannot be read") == 1  # once, not per request
    monkeypatch.setattr(file_verifier, "read_token_file", real_read)  # e.g. an administrator's chmod
    verified = await verifier.verify_token(token)
    assert verified is not None and verified.client_id == "alice"


async def test_a_removed_file_is_reported_once_and_followed_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    token = add_token(path, "alice")
    verifier = TokenFile(path)
    assert await verifier.verify_token(token) is not None
    kept = path.read_text()
    path.unlink()
    with caplog.at_level(logging.WARNING):
        assert await verifier.verify_token(token) is None
        assert await verifier.verify_token(token) is None
    assert caplog.text.count("is gone") == 1
    path.write_text(kept)
    assert await verifier.verify_token(token) is not None
