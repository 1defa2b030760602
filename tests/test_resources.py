"""MCP resources and the resume prompt (issue 11), through the in-process MCP client on both backends and
over HTTP: `session://{session_id}` reads a session as markdown, resources/list pages the caller's sessions
most recently updated first, a long session is bounded, `resume_session` hands its summary, state and last
runs to a host's model, and another user's session reads exactly like a missing one."""

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    Annotations,
    GetPromptResult,
    Prompt,
    PromptArgument,
    PromptMessage,
    PromptReference,
    Resource,
    ResourceTemplate,
    ResourceTemplateReference,
    TextContent,
    TextResourceContents,
)

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.settings import Settings
from mcp_server_sessions.server.transcript_markdown import session_markdown
from mcp_server_sessions.store import (
    AgentConfig,
    NewRun,
    SessionStore,
    SessionSummary,
    attachments,
)
from mcp_server_sessions.store.attachments import NewAttachment
from mcp_server_sessions.store.limits import RESULT_BUDGET_BYTES
from mcp_server_sessions.store.models import RunMetrics
from mcp_server_sessions.store.run_inputs import NewToolCall
from tests.helpers import call_ok
from tests.http_server import add_token, http_client, http_server
from tests.test_isolation import BAD_CURSOR

pytestmark = pytest.mark.anyio

TIMEOUT = 60  # seconds for a block of calls; generous for a loaded 2-core machine
WHEN = "2025-01-01T00:00:00Z"
MISSING = "No session {!r} for this user; call list_sessions to see your sessions or start_session to create it."


@pytest.fixture
async def bob(sessions_db: str) -> AsyncIterator[Client]:
    """A second server on the same database whose user is 'bob' (the `client` fixture's is 'alice')."""
    async with Client(build_server(Settings(db=sessions_db, user="bob"))) as connected:
        yield connected


async def record(store: SessionStore, user: str, session_id: str, count: int, text: str = "turn {}") -> None:
    """`count` recorded runs in the user's session, straight into the store (faster than tool calls)."""
    sessions = store.for_user(user)
    for i in range(count):
        run = NewRun.recorded(text.format(i + 1), f"answer {i + 1}", run_id=f"r{i + 1}")
        await sessions.append_run(session_id, run)


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    assert len(result.contents) == 1 and isinstance(result.contents[0], TextResourceContents)
    assert (result.contents[0].uri, result.contents[0].mime_type) == (uri, "text/markdown")
    return result.contents[0].text


async def read_error(client: Client, uri: str) -> tuple[int, str]:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(uri)
    return raised.value.code, raised.value.message


async def prompt_error(client: Client, arguments: dict[str, str]) -> tuple[int, str]:
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("resume_session", arguments)
    return raised.value.code, raised.value.message


async def prompt_text(client: Client, arguments: dict[str, str]) -> str:
    result = await client.get_prompt("resume_session", arguments)
    assert len(result.messages) == 1 and result.messages[0].role == "user"
    assert isinstance(result.messages[0].content, TextContent)
    return result.messages[0].content.text


async def markdown_of(store: SessionStore, user: str, session_id: str, last_runs: int | None = None) -> str:
    """What the transcript of these runs is, rendered from the store's own record."""
    found = await store.for_user(user).session_record(session_id, last_runs=last_runs)
    return session_markdown(found, earlier_runs=found.session.run_count - len(found.runs))


async def test_the_template_and_the_prompt_are_listed() -> None:
    async with Client(build_server(Settings(db=":memory:", user="alice"))) as client:
        templates = (await client.list_resource_templates()).resource_templates
        prompts = (await client.list_prompts()).prompts
    assert templates == [
        ResourceTemplate(
            name="session",
            title="Session transcript",
            uri_template="session://{session_id}",
            description="One of your sessions as markdown: summary, state and its last runs with their tool calls.",
            mime_type="text/markdown",
        ),
        ResourceTemplate(
            name="attachment",
            title="Attachment",
            uri_template="session://{session_id}/attachments/{attachment_id}",
            description="The bytes of an attachment of one of your runs (the uri in get_chat_history's messages).",
            mime_type="application/octet-stream",
        ),
    ]
    assert prompts == [
        Prompt(
            name="resume_session",
            title="Resume a session",
            description="One of your sessions (summary, state, last runs) as context for your model to continue it.",
            arguments=[
                PromptArgument(
                    name="session_id",
                    description="The session to continue (resources/list or list_sessions).",
                    required=True,
                ),
                PromptArgument(
                    name="num_runs",
                    description="How many of its last runs to include, 0 to 100; default: the session's "
                    "num_history_runs, else 3.",
                    required=False,
                ),
            ],
        )
    ]


async def test_resources_list_pages_the_users_sessions_most_recently_updated_first(
    client: Client, store: SessionStore
) -> None:
    alice = store.for_user("alice")
    for i in range(52):
        await alice.start_session(f"s{i:02}", name=f"Trip {i}" if i % 2 else None)
    await record(store, "alice", "s00", 1)  # s00 now the most recently updated
    await alice.set_summary(
        "s01", SessionSummary(summary="Kayaks " * 40, topics=["kayak"], run_count=0, updated_at=WHEN)
    )
    with anyio.fail_after(TIMEOUT):
        first = await client.list_resources()
        assert first.next_cursor is not None
        second = await client.list_resources(cursor=first.next_cursor)
    assert (len(first.resources), len(second.resources), second.next_cursor) == (50, 2, None)

    sessions = {s.session_id: s for s in (await alice.list_sessions(limit=100)).sessions}
    order = ["s01", "s00", *(f"s{i:02}" for i in range(51, 1, -1))]  # updated by its summary, then its run
    expected = []
    for session_id in order:
        session = sessions[session_id]
        runs = "1 run" if session_id == "s00" else "0 runs"
        description = f"{runs}, updated {session.updated_at}"
        if session_id == "s01":
            description += ". " + ("Kayaks " * 40)[:159] + "…"
        expected.append(
            Resource(
                uri=f"session://{session_id}",
                name=session_id,
                title=session.name,
                description=description,
                mime_type="text/markdown",
                annotations=Annotations(last_modified=session.updated_at),
            )
        )
    assert first.resources + second.resources == expected


async def test_a_bad_cursor_is_refused_in_one_sentence(client: Client) -> None:
    with pytest.raises(MCPError) as raised:
        await client.list_resources(cursor="not-a-cursor")
    assert (raised.value.code, raised.value.message) == (INVALID_PARAMS, BAD_CURSOR)


async def test_reading_a_session_gives_its_transcript_as_markdown(client: Client, store: SessionStore) -> None:
    alice = store.for_user("alice")
    await alice.start_session("trip:2025@home", name="Fjords", state={"day": 3})
    weather = NewToolCall(tool_name="weather", arguments={"town": "Flåm"}, result={"sky": "clear"})
    metrics = RunMetrics(input_tokens=12, output_tokens=5, model="claude-x")
    planned = NewRun.recorded("Plan a *kayak* day", "Start at Flåm.", [weather], metrics)
    await alice.append_run("trip:2025@home", planned)
    await alice.append_run("trip:2025@home", NewRun.recorded("And tomorrow?", "Rest."))
    listed = (await client.list_resources()).resources
    assert [r.uri for r in listed] == ["session://trip%3A2025%40home"]
    text = await read_text(client, listed[0].uri)
    assert text == await markdown_of(store, "alice", "trip:2025@home")
    assert "Plan a \\*kayak\\* day" in text and "### Run 2" in text and "**Tool call** `weather`" in text


async def test_another_users_session_reads_exactly_like_a_missing_one(
    client: Client, bob: Client, store: SessionStore
) -> None:
    await record(store, "alice", "secret", 2, "alice's secret {}")
    await record(store, "alice", "s1", 1, "alice in s1")
    await record(store, "bob", "s1", 1, "bob in s1")
    with anyio.fail_after(TIMEOUT):
        bobs = (await bob.list_resources()).resources
        foreign = await read_error(bob, "session://secret")
        missing = await read_error(bob, "session://never")
        foreign_prompt = await prompt_error(bob, {"session_id": "secret"})
        missing_prompt = await prompt_error(bob, {"session_id": "never"})
        completed = await bob.complete(
            ResourceTemplateReference(uri="session://{session_id}"),
            {
                "name": "session_id",
                "value": "s",
            },
        )
        bobs_s1 = await read_text(bob, "session://s1")
        alices_s1 = await read_text(client, "session://s1")
    assert [r.uri for r in bobs] == ["session://s1"]
    assert foreign == foreign_prompt == (INVALID_PARAMS, MISSING.format("secret"))
    assert missing == missing_prompt == (INVALID_PARAMS, MISSING.format("never"))
    assert completed.completion.values == ["s1"]
    assert bobs_s1 == await markdown_of(store, "bob", "s1") and "bob in s1" in bobs_s1
    assert alices_s1 == await markdown_of(store, "alice", "s1") and "bob" not in alices_s1


async def test_reading_a_session_or_resuming_it_never_reads_an_attachments_bytes(
    client: Client, store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = b"\x89PNG\r\n\x1a\n" + bytes(4 * 1024 * 1024)
    media = [NewAttachment(type="image", mime_type="image/png", data=base64.b64encode(big).decode(), name="map.png")]
    run = NewRun.recorded("Here is the map", "Got it.", run_id="r1").model_copy(update={"attachments": media})
    await store.for_user("alice").append_run("trip", run)

    def refused(data: bytes) -> bytes:
        raise AssertionError(f"{len(data):,} bytes of an attachment were read and encoded")

    # where a record's attachment bytes are encoded, for both backends (attachments.stored_record)
    monkeypatch.setattr(attachments, "base64", SimpleNamespace(b64encode=refused))
    with anyio.fail_after(TIMEOUT):
        text = await read_text(client, "session://trip")
        prompt = await prompt_text(client, {"session_id": "trip"})
    assert text == await markdown_of(store, "alice", "trip")
    assert "map.png" in text and "map.png" in prompt and len(text) < 10_000 and len(prompt) < 10_000


async def test_a_malformed_or_unknown_uri_is_one_sentence(client: Client) -> None:
    bad_id = "session_id must be 1 to 128 letters, digits or ._:@- characters; got {}."
    assert await read_error(client, "session://a%20b") == (INVALID_PARAMS, bad_id.format("'a b'"))
    assert await read_error(client, "session://") == (INVALID_PARAMS, bad_id.format("an empty string"))
    assert await read_error(client, "session://a/b") == (INVALID_PARAMS, "Unknown resource: session://a/b")


async def test_a_long_session_shows_its_last_runs_within_the_byte_budget(client: Client, store: SessionStore) -> None:
    await record(store, "alice", "long", 6, "{} " + "fjord " * 150_000)  # 900 KB a run: six pass 4 MB
    text = await read_text(client, "session://long")
    assert len(text.encode()) <= RESULT_BUDGET_BYTES
    assert text == await markdown_of(store, "alice", "long", last_runs=4)
    assert "2 earlier runs" in text and "### Run 2" not in text and "### Run 3" in text


async def test_a_session_of_many_runs_shows_its_last_hundred(client: Client, store: SessionStore) -> None:
    await record(store, "alice", "many", 102)
    text = await read_text(client, "session://many")
    assert text == await markdown_of(store, "alice", "many", last_runs=100)
    assert "2 earlier runs" in text and "turn 2\n" not in text and "turn 3\n" in text


async def test_a_run_larger_than_the_budget_is_cut_not_dropped(client: Client, store: SessionStore) -> None:
    huge = NewRun.recorded("*" * 1_000_000, "_" * 1_000_000, run_id="huge")  # 2 MB each once escaped
    await store.for_user("alice").append_run("big", huge)
    text = await read_text(client, "session://big")
    assert len(text.encode()) <= RESULT_BUDGET_BYTES
    header = (await markdown_of(store, "alice", "big", last_runs=0)).split("## Runs")[0]
    assert text.startswith(header + "## Runs\n\n### Run 1\n\n`huge`")
    user, answer = text.split("**User:**\n\n")[1].split("\n\n**Assistant:**\n\n")
    kept = len(user.split("…")[0]) // 2  # each * and _ is escaped by a backslash
    cut = "…\\[cut: {:,} more characters; get\\_chat\\_history / get\\_tool\\_call\\_history return it whole\\]"
    assert user == "\\*" * kept + cut.format(1_000_000 - kept)
    assert answer == "\\_" * kept + cut.format(1_000_000 - kept) + "\n"
    assert kept >= 1_000


async def test_text_that_grows_in_markdown_is_cut_at_the_budget_with_a_note(
    client: Client, store: SessionStore
) -> None:
    indented = "\t\t\t\t\t\t\t\tx\n" * 100_000  # 1 MB; each tab becomes four non-breaking spaces
    await store.for_user("alice").append_run("tabs", NewRun.recorded(indented, "ok", run_id="t"))
    text = await read_text(client, "session://tabs")
    note = "\n\n*[Transcript cut at 4,000,000 bytes; get_chat_history and get_tool_call_history return it whole.]*\n"
    assert text.endswith(note) and RESULT_BUDGET_BYTES - 4 <= len(text.encode()) <= RESULT_BUDGET_BYTES
    assert text.startswith((await markdown_of(store, "alice", "tabs"))[: len(text) - len(note)])


def instruction(session_id: str, shown: str) -> str:
    return (
        f"Below is an earlier conversation (session `{session_id}`): its summary and state if it has them, and "
        f"{shown}. Continue it: answer the user's next message as the assistant of this conversation, picking up "
        f"where it left off. If you have this server's record_run tool, record each new turn with it (session_id "
        f"`{session_id}`) so the session stays whole.\n\n"
    )


async def test_resume_session_hands_over_summary_state_and_the_sessions_own_number_of_runs(
    client: Client, store: SessionStore
) -> None:
    alice = store.for_user("alice")
    await alice.start_session("trip", name="Fjords", state={"day": 3}, agent=AgentConfig(num_history_runs=2))
    await record(store, "alice", "trip", 4)
    summary = SessionSummary(summary="Kayaking plans.", topics=["kayak"], run_count=4, updated_at=WHEN)
    await alice.set_summary("trip", summary)
    with anyio.fail_after(TIMEOUT):
        result = await client.get_prompt("resume_session", {"session_id": "trip"})
    expected_text = instruction("trip", "its last 2 runs at most") + await markdown_of(store, "alice", "trip", 2)
    assert result == GetPromptResult(
        meta=result.meta,
        description="One of your sessions (summary, state, last runs) as context for your model to continue it.",
        messages=[PromptMessage(role="user", content=TextContent(type="text", text=expected_text))],
    )
    assert "## Summary\n\nKayaking plans." in expected_text and '"day": 3' in expected_text
    assert "### Run 3" in expected_text and "### Run 2" not in expected_text


@pytest.mark.parametrize(
    ("num_runs", "shown", "last_runs"),
    [
        (None, "its last 3 runs at most", 3),  # no agent config: HISTORY_RUNS
        ("1", "its last 1 run at most", 1),
        (" 5 ", "its last 5 runs at most", 5),  # more than the session has: all of them
        ("0", "none of its runs", 0),
        ("100", "its last 100 runs at most", 100),
    ],
)
async def test_resume_session_takes_num_runs_from_0_to_100(
    client: Client, store: SessionStore, num_runs: str | None, shown: str, last_runs: int
) -> None:
    await record(store, "alice", "trip", 4)
    arguments = {"session_id": "trip"} | ({"num_runs": num_runs} if num_runs is not None else {})
    text = await prompt_text(client, arguments)
    assert text == instruction("trip", shown) + await markdown_of(store, "alice", "trip", last_runs)


@pytest.mark.parametrize("num_runs", ["101", "-1", "1.5", "", "three", "٣", "1" * 50])
async def test_resume_session_refuses_num_runs_out_of_range(client: Client, store: SessionStore, num_runs: str) -> None:
    await record(store, "alice", "trip", 1)
    shown = repr(num_runs) if len(num_runs) <= 40 else "50 characters"
    assert await prompt_error(client, {"session_id": "trip", "num_runs": num_runs}) == (
        INVALID_PARAMS,
        f"num_runs must be a whole number from 0 to 100; got {shown}.",
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "resume_session needs 'session_id'; add it and call again."),
        ({"num_runs": "2"}, "resume_session needs 'session_id'; add it and call again."),
        (
            {"session_id": "trip", "last": "2"},
            "resume_session has no argument 'last'; remove it and call again (it accepts session_id, num_runs).",
        ),
        (
            {"session_id": "no spaces"},
            "session_id must be 1 to 128 letters, digits or ._:@- characters; got 'no spaces'.",
        ),
    ],
)
async def test_resume_session_refuses_bad_arguments_in_one_sentence(
    client: Client, arguments: dict[str, str], message: str
) -> None:
    assert await prompt_error(client, arguments) == (INVALID_PARAMS, message)


async def test_session_ids_complete_for_the_template_and_the_prompt(client: Client, store: SessionStore) -> None:
    for session_id in ("trip-1", "trip-2", "work"):
        await store.for_user("alice").start_session(session_id)
    template = ResourceTemplateReference(uri="session://{session_id}")
    by_template = await client.complete(template, {"name": "session_id", "value": "tr"})
    by_prompt = await client.complete(PromptReference(name="resume_session"), {"name": "session_id", "value": ""})
    other_argument = await client.complete(PromptReference(name="resume_session"), {"name": "num_runs", "value": ""})
    assert (by_template.completion.values, by_template.completion.has_more) == (["trip-2", "trip-1"], False)
    assert by_prompt.completion.values == ["work", "trip-2", "trip-1"]
    assert other_argument.completion.values == []


async def test_over_http_the_tokens_user_decides_what_resources_list_shows(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("")
    tokens = {user: add_token(tokens_file, user) for user in ("alice", "bob")}
    with http_server(tmp_path, tmp_path / "sessions.db", "--tokens", str(tokens_file)) as server:
        with anyio.fail_after(TIMEOUT):
            async with http_client(server.mcp_url, tokens["alice"]) as alice:
                await call_ok(alice, "record_run", session_id="alice-trip", input="hello", output="hi")
                alices = [r.uri for r in (await alice.list_resources()).resources]
                alice_reads = await read_text(alice, "session://alice-trip")
            async with http_client(server.mcp_url, tokens["bob"]) as bob:
                await call_ok(bob, "start_session", session_id="bob-notes")
                bobs = [r.uri for r in (await bob.list_resources()).resources]
                bob_reads = await read_error(bob, "session://alice-trip")
                bob_prompt = await prompt_error(bob, {"session_id": "alice-trip"})
    assert (alices, bobs) == (["session://alice-trip"], ["session://bob-notes"])
    assert "**User:**\n\nhello" in alice_reads and "`alice`" in alice_reads
    assert bob_reads == bob_prompt == (INVALID_PARAMS, MISSING.format("alice-trip"))
