"""Attachments (issue 12, "Media"), on SQLite and PostgreSQL through the in-process client: record_run's
attachments come back as references in the Run and in get_chat_history, their bytes through the resource
session://{session_id}/attachments/{attachment_id}; every bad attachment is one sentence that stores
nothing; another user's attachment reads as a missing one; delete removes them, fork copies them, and
export -> import -> export keeps them byte for byte. What Claude receives in `run` is checked in the
double's request log."""

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.export_format import FormatError, RecordChecks, encode
from mcp_server_sessions.server.settings import Settings
from mcp_server_sessions.store import InvalidInput, NewRun
from mcp_server_sessions.store.attachments import NewAttachment
from mcp_server_sessions.store.limits import MAX_ATTACHMENT_BYTES_PER_RUN
from tests.anthropic_double import MessagesDouble, text, tool_use
from tests.conftest import open_test_store
from tests.helpers import call_error, call_ok

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
NOTES = "Fjord notes: kayak at 9, ferry at 14. Zürich ☕\n".encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image(data: bytes = PNG, **fields: Any) -> dict[str, Any]:
    return {"type": "image", "mime_type": "image/png", "data": b64(data), **fields}


def refs_without_ids(refs: list[dict[str, Any]], session_id: str) -> list[dict[str, Any]]:
    """The references with their ids checked (each uri names its session and id) and left out."""
    for ref in refs:
        assert ref["attachment_id"].startswith("att-")
        assert ref["uri"] == f"session://{session_id}/attachments/{ref['attachment_id']}"
    return [{k: v for k, v in ref.items() if k not in ("attachment_id", "uri")} for ref in refs]


async def read_bytes(client: Client, uri: str) -> tuple[str | None, bytes]:
    """The resource's mimeType and its bytes (a blob decoded; a text as UTF-8)."""
    result = await client.read_resource(uri)
    [content] = result.contents
    data = base64.b64decode(content.blob) if hasattr(content, "blob") else content.text.encode()
    return content.mime_type, data


async def read_error(client: Client, uri: str) -> str:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(uri)
    return raised.value.error.message


@asynccontextmanager
async def client_of(sessions_db: str, user: str) -> AsyncIterator[Client]:
    """Another in-process server on the same database, acting for `user`."""
    async with Client(build_server(Settings(db=sessions_db, user=user))) as connected:
        yield connected


async def record_with_media(client: Client, session_id: str = "trip", run_id: str = "r1") -> dict[str, Any]:
    return await call_ok(
        client,
        "record_run",
        session_id=session_id,
        run_id=run_id,
        input="Here is the map, the plan and my notes",
        output="Got them.",
        attachments=[
            image(name="map.png"),
            {"type": "file", "mime_type": "application/pdf", "url": "https://example.com/plan.pdf"},
            {"type": "file", "mime_type": "text/plain", "data": b64(NOTES), "name": "notes.txt"},
        ],
    )


MEDIA = [
    {"type": "image", "mime_type": "image/png", "name": "map.png", "size": len(PNG), "url": None},
    {"type": "file", "mime_type": "application/pdf", "name": None, "size": 0, "url": "https://example.com/plan.pdf"},
    {"type": "file", "mime_type": "text/plain", "name": "notes.txt", "size": len(NOTES), "url": None},
]


async def test_attachments_come_back_as_references_and_their_bytes_from_the_resource(client: Client) -> None:
    run = await record_with_media(client)
    assert refs_without_ids(run["attachments"], "trip") == MEDIA
    history = await call_ok(client, "get_chat_history", session_id="trip")
    assert [(m["role"], m["attachments"]) for m in history["messages"]] == [
        ("user", run["attachments"]),
        ("assistant", []),
    ]
    png, pdf, notes = (ref["uri"] for ref in run["attachments"])
    assert await read_bytes(client, png) == ("image/png", PNG)
    assert await read_bytes(client, pdf) == ("text/uri-list", b"https://example.com/plan.pdf")
    assert await read_bytes(client, notes) == ("text/plain", NOTES)
    assert "session://{session_id}/attachments/{attachment_id}" in [
        template.uri_template for template in (await client.list_resource_templates()).resource_templates
    ]
    # a run without attachments has none, and the retry of r1 stores them once
    plain = await call_ok(client, "record_run", session_id="trip", input="thanks", output="welcome")
    assert plain["attachments"] == []
    assert (await record_with_media(client))["attachments"] == run["attachments"]
    assert (await call_ok(client, "get_session", session_id="trip"))["run_count"] == 2


TOO_BIG = b"%PDF-" + bytes(MAX_ATTACHMENT_BYTES_PER_RUN - 4)
FIX = "; fix it and call again."


@pytest.mark.parametrize(
    ("attachments", "message"),
    [
        (
            [image(), {"type": "image", "mime_type": "image/png", "data": "not base64!"}],
            "attachments[1].data is not valid base64; send the bytes in standard base64 (A-Z, a-z, 0-9, +, /, "
            "= padding) with no spaces or line breaks.",
        ),
        (
            [{"type": "image", "mime_type": "image/png", "data": b64(PNG)[:-2]}],
            "attachments[0].data is not valid base64; send the bytes in standard base64 (A-Z, a-z, 0-9, +, /, "
            "= padding) with no spaces or line breaks.",
        ),
        (
            [{"type": "image", "mime_type": "image/bmp", "data": b64(b"BM")}],
            "attachments[0].mime_type 'image/bmp' is not accepted for type image; use one of image/png, image/jpeg, "
            "image/gif, image/webp.",
        ),
        (
            [{"type": "audio", "mime_type": "image/png", "data": b64(PNG)}],
            "attachments[0].mime_type 'image/png' is not accepted for type audio; use one of audio/mpeg, audio/wav, "
            "audio/ogg, audio/webm, audio/flac, audio/mp4.",
        ),
        (
            [{"type": "image", "mime_type": "image/jpeg", "data": b64(PNG)}],
            "attachments[0].data does not start as image/jpeg data does; send the mime_type that matches these bytes.",
        ),
        (
            [{"type": "file", "mime_type": "application/pdf", "data": b64(NOTES)}],
            "attachments[0].data does not start as application/pdf data does; send the mime_type that matches "
            "these bytes.",
        ),
        (
            [{"type": "file", "mime_type": "text/plain", "data": b64(PNG)}],
            "attachments[0].data is not UTF-8 text, as text/plain must be; send it as UTF-8.",
        ),
        (
            [{"type": "file", "mime_type": "text/plain", "data": ""}],
            "attachments[0].data is empty; send the file's bytes.",
        ),
        (
            [{"type": "file", "mime_type": "application/pdf", "data": b64(TOO_BIG)}],
            f"attachments[0] is {len(TOO_BIG):,} bytes, over the limit of {MAX_ATTACHMENT_BYTES_PER_RUN:,} bytes "
            "of attachments per run; send less.",
        ),
        (
            [image(), {"type": "file", "mime_type": "application/pdf", "data": b64(TOO_BIG[: -len(PNG)])}],
            f"attachments[1] is {len(TOO_BIG) - len(PNG):,} bytes, over the limit of "
            f"{MAX_ATTACHMENT_BYTES_PER_RUN:,} bytes of attachments per run; send less.",
        ),
        (
            [{**image(), "url": "https://example.com/a.png"}],
            "attachments[0] must have exactly one of data (base64) and url; give one, not both or neither.",
        ),
        (
            [{"type": "image", "mime_type": "image/png"}],
            "attachments[0] must have exactly one of data (base64) and url; give one, not both or neither.",
        ),
        (
            [{"type": "image", "mime_type": "image/png", "url": "ftp://example.com/a.png"}],
            "attachments[0].url must be an http or https address (ASCII, no spaces); send one, or the bytes as data.",
        ),
        (
            [image(), image(), {"type": "image", "mime_type": "image/png", "url": "javascript:alert(1)"}],
            "attachments[2].url must be an http or https address (ASCII, no spaces); send one, or the bytes as data.",
        ),
        (
            [image(name="map\n.png")],
            "attachments[0].name contains control characters; send a plain file name.",
        ),
        (
            [image()] * 9,
            "Invalid argument 'attachments' for record_run: list should have at most 8 items after validation, "
            f"not 9{FIX}",
        ),
        (
            [{"type": "video", "mime_type": "video/mp4", "data": "AAAA"}],
            "Invalid argument 'attachments.0.type' for record_run: should be 'image', 'audio' or 'file'" + FIX,
        ),
    ],
    ids=[
        "bad-base64",
        "bad-padding",
        "mime-not-allowed",
        "mime-of-another-type",
        "png-as-jpeg",
        "text-as-pdf",
        "binary-as-text",
        "empty",
        "one-too-big",
        "together-too-big",
        "data-and-url",
        "neither",
        "ftp-url",
        "javascript-url",
        "control-in-name",
        "too-many",
        "unknown-type",
    ],
)
async def test_a_bad_attachment_is_one_sentence_and_stores_nothing(
    client: Client, attachments: list[dict[str, Any]], message: str
) -> None:
    await call_ok(client, "record_run", session_id="trip", input="first", output="one")
    before = await call_ok(client, "get_chat_history", session_id="trip")
    refused = await call_error(
        client, "record_run", session_id="trip", input="look", output="ok", attachments=attachments
    )
    assert refused == message
    assert (await call_ok(client, "get_session", session_id="trip"))["run_count"] == 1
    assert await call_ok(client, "get_chat_history", session_id="trip") == before
    # nor does a refused record_run start a session
    await call_error(client, "record_run", session_id="new", input="look", output="ok", attachments=attachments)
    assert (await call_ok(client, "list_sessions"))["total"] == 1


async def test_another_users_attachment_reads_exactly_like_a_missing_one(client: Client, sessions_db: str) -> None:
    run = await record_with_media(client)
    uri = run["attachments"][0]["uri"]
    async with client_of(sessions_db, "bob") as bob:
        no_session = await read_error(bob, uri)
        assert no_session == (
            "No session 'trip' for this user; call list_sessions to see your sessions or start_session to create it."
        )
        assert await read_error(bob, "session://trip/attachments/att-0") == no_session
        await call_ok(bob, "start_session", session_id="trip")  # bob's own 'trip' holds none of alice's
        no_attachment = await read_error(bob, uri)
        assert no_attachment == (
            f"Session 'trip' has no attachment {run['attachments'][0]['attachment_id']!r}; "
            "call get_chat_history to see its attachments."
        )
        assert (await call_ok(bob, "get_chat_history", session_id="trip"))["messages"] == []
    assert await read_bytes(client, uri) == ("image/png", PNG)
    assert await read_error(client, "session://trip/attachments/bad%20id") == (
        "attachment_id must be 1 to 128 letters, digits or ._:@- characters; got 'bad id'."
    )


async def test_deleting_the_session_deletes_its_attachments(client: Client, sessions_db: str) -> None:
    run = await record_with_media(client)
    await call_ok(client, "delete_session", session_id="trip")
    await call_ok(client, "start_session", session_id="trip")
    uri, attachment_id = run["attachments"][0]["uri"], run["attachments"][0]["attachment_id"]
    assert await read_error(client, uri) == (
        f"Session 'trip' has no attachment {attachment_id!r}; call get_chat_history to see its attachments."
    )
    store = await open_test_store(sessions_db)
    try:
        if hasattr(store, "purge_pending"):
            await store.purge_pending()
        assert await attachment_rows(store, sessions_db) == 0
    finally:
        await store.close()


async def attachment_rows(store: Any, sessions_db: str) -> int:
    """How many attachment rows the database holds, whoever owns them."""
    if "://" not in sessions_db:
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(sessions_db)) as conn:
            return int(conn.execute("SELECT count(*) FROM attachments").fetchone()[0])
    import asyncpg

    conn = await asyncpg.connect(sessions_db)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM attachments"))
    finally:
        await conn.close()


async def test_a_fork_holds_copies_of_the_attachments_of_its_runs(client: Client) -> None:
    first = await record_with_media(client)
    second = [image(b"\x89PNG\r\n\x1a\nsecond")]
    await call_ok(client, "record_run", session_id="trip", run_id="r2", input="and", output="ok", attachments=second)
    await call_ok(client, "fork_session", session_id="trip", new_session_id="trip-b", up_to_run_id="r1")
    history = await call_ok(client, "get_chat_history", session_id="trip-b")
    [asked, _] = history["messages"]
    assert refs_without_ids(asked["attachments"], "trip-b") == MEDIA
    assert [ref["attachment_id"] for ref in asked["attachments"]] == [
        ref["attachment_id"] for ref in first["attachments"]
    ]
    await call_ok(client, "delete_session", session_id="trip")  # the fork's copies are its own
    assert await read_bytes(client, asked["attachments"][0]["uri"]) == ("image/png", PNG)
    assert await read_bytes(client, asked["attachments"][2]["uri"]) == ("text/plain", NOTES)


def recorded_with(run_id: str, media: list[NewAttachment]) -> NewRun:
    return NewRun.recorded("see", "seen", run_id=run_id).model_copy(update={"attachments": media})


async def test_export_import_export_keeps_attachments_byte_for_byte(sessions_db: str) -> None:
    store = await open_test_store(sessions_db)
    try:
        alice = store.for_user("alice")
        media = [
            NewAttachment(type="image", mime_type="image/png", data=b64(PNG), name="map.png"),
            NewAttachment(type="file", mime_type="application/pdf", url="https://example.com/plan.pdf"),
            NewAttachment(type="file", mime_type="application/pdf", data=b64(PDF)),
        ]
        await alice.append_run("trip", recorded_with("r1", media))
        await alice.append_run("trip", NewRun.recorded("more", "ok", run_id="r2"))
        [exported] = [record async for record in store.export_sessions(user_id="alice")]
        line = encode(exported)
        assert [a.data for a in exported.runs[0].attachments] == [b64(PNG), None, b64(PDF)]
        assert exported.runs[1].attachments == []
        await alice.delete_session("trip")
        await store.import_session(exported)
        [again] = [record async for record in store.export_sessions(user_id="alice")]
        assert encode(again) == line
        ref, data = await alice.get_attachment("trip", exported.runs[0].attachments[2].attachment_id)
        assert (ref.mime_type, data) == ("application/pdf", PDF)
    finally:
        await store.close()


AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(64)
MARKDOWN = "# Plan\n\n* kayak\n* ferry ⛴\n"


async def test_run_gives_claude_the_images_and_documents_and_notes_the_rest(
    agent_client: Client, double: MessagesDouble
) -> None:
    double.script(text("A map, a plan and notes."), text("Still here."))
    run = await call_ok(
        agent_client,
        "run",
        session_id="trip",
        message="What did I send?",
        attachments=[
            image(name="map.png"),
            {"type": "file", "mime_type": "application/pdf", "data": b64(PDF), "name": "plan.pdf"},
            {"type": "file", "mime_type": "text/markdown", "data": b64(MARKDOWN.encode())},
            {"type": "image", "mime_type": "image/webp", "url": "https://example.com/view.webp"},
            {"type": "file", "mime_type": "application/pdf", "url": "https://example.com/ferry.pdf"},
            {"type": "file", "mime_type": "text/csv", "url": "https://example.com/times.csv"},
            {"type": "audio", "mime_type": "audio/mpeg", "data": b64(AUDIO), "name": "memo.mp3"},
        ],
    )
    [request] = double.bodies
    assert request["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)},
                    "title": "plan.pdf",
                },
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": MARKDOWN}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/view.webp"}},
                {"type": "document", "source": {"type": "url", "url": "https://example.com/ferry.pdf"}},
                {
                    "type": "text",
                    "text": "[The user attached attachment 6: a text/csv file at https://example.com/times.csv, "
                    "stored as its address and not fetched.]",
                },
                {
                    "type": "text",
                    "text": "[The user attached attachment 7 (memo.mp3): audio is stored with the run but not sent "
                    "to the model, which does not take audio.]",
                },
                {"type": "text", "text": "What did I send?", "cache_control": {"type": "ephemeral"}},
            ],
        }
    ]
    assert (run["status"], run["content"]) == ("completed", "A map, a plan and notes.")
    assert [ref["mime_type"] for ref in run["attachments"]] == [
        "image/png",
        "application/pdf",
        "text/markdown",
        "image/webp",
        "application/pdf",
        "text/csv",
        "audio/mpeg",
    ]
    history = await call_ok(agent_client, "get_chat_history", session_id="trip")
    assert history["messages"][0]["attachments"] == run["attachments"]
    assert await read_bytes(agent_client, run["attachments"][6]["uri"]) == ("audio/mpeg", AUDIO)

    # the next run has the earlier one in context as text, without its media
    await call_ok(agent_client, "run", session_id="trip", message="And now?")
    assert double.bodies[1]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What did I send?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A map, a plan and notes."}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And now?", "cache_control": {"type": "ephemeral"}}],
        },
    ]


async def test_run_refuses_a_bad_attachment_before_calling_claude(agent_client: Client, double: MessagesDouble) -> None:
    refused = await call_error(
        agent_client,
        "run",
        session_id="trip",
        message="look",
        attachments=[image(), {"type": "image", "mime_type": "image/gif", "data": b64(PNG)}],
    )
    assert refused == (
        "attachments[1].data does not start as image/gif data does; send the mime_type that matches these bytes."
    )
    assert double.bodies == []
    assert (await call_ok(agent_client, "list_sessions"))["total"] == 0


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city, from the client's own service.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def test_a_paused_run_keeps_references_and_continues_with_the_attachments_bytes(
    agent_client: Client, double: MessagesDouble, sessions_db: str
) -> None:
    double.script(tool_use("get_weather", {"city": "Oslo"}, id="toolu_w1"), text("Sunny, as on your map."))
    notes = {"type": "file", "mime_type": "application/json", "data": b64(b'{"city": "Oslo"}'), "name": "trip.json"}
    paused = await call_ok(
        agent_client,
        "run",
        session_id="trip",
        message="Weather where I go?",
        tools=[WEATHER],
        attachments=[image(), notes],
    )
    assert paused["status"] == "paused"
    sent = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}},
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": '{"city": "Oslo"}'},
            "title": "trip.json",
        },
        {"type": "text", "text": "Weather where I go?"},
    ]
    assert double.bodies[0]["messages"][0]["content"][:2] == sent[:2]

    store = await open_test_store(sessions_db)
    try:
        [run] = (await store.for_user("alice").session_record("trip")).runs
    finally:
        await store.close()
    assert run.resume is not None
    assert run.resume["conversation"][0]["content"] == [
        {"type": "image", "source": {"type": "attachment", "index": 0}},
        {"type": "document", "source": {"type": "attachment", "index": 1}, "title": "trip.json"},
        {"type": "text", "text": "Weather where I go?"},
    ]

    continued = await call_ok(
        agent_client,
        "continue_run",
        run_id=paused["run_id"],
        tool_results=[{"tool_call_id": "toolu_w1", "result": "sun"}],
    )
    assert (continued["status"], continued["attachments"]) == ("completed", paused["attachments"])
    assert double.bodies[1]["messages"][0] == {"role": "user", "content": sent}


async def test_an_imported_attachment_id_the_session_holds_already_is_refused_writing_nothing(
    sessions_db: str,
) -> None:
    store = await open_test_store(sessions_db)
    try:
        alice = store.for_user("alice")
        media = [NewAttachment(type="image", mime_type="image/png", data=b64(PNG))]
        await alice.append_run(
            "trip", NewRun.recorded("see", "seen", run_id="r1").model_copy(update={"attachments": media})
        )
        [exported] = [record async for record in store.export_sessions(user_id="alice")]
        taken = exported.runs[0].attachments[0].attachment_id
        again = exported.model_copy(update={"runs": [exported.runs[0].model_copy(update={"run_id": "r2"})]})
        with pytest.raises(InvalidInput) as refused:
            await store.import_session(again)
        assert str(refused.value) == (
            f"The session already has an attachment {taken!r} on another run; each attachment_id of a session "
            "must be its own, so fix the record."
        )
        [after] = [record async for record in store.export_sessions(user_id="alice")]
        assert encode(after) == encode(exported)
    finally:
        await store.close()


async def test_a_record_naming_one_attachment_id_on_two_runs_is_refused_in_the_check_phase(store: Any) -> None:
    alice = store.for_user("alice")
    for run_id in ("r1", "r2"):
        media = [NewAttachment(type="image", mime_type="image/png", data=b64(PNG))]
        await alice.append_run(
            "trip", NewRun.recorded("see", "seen", run_id=run_id).model_copy(update={"attachments": media})
        )
    [exported] = [record async for record in store.export_sessions(user_id="alice")]
    first, second = exported.runs
    twice = first.attachments[0].attachment_id
    clash = second.model_copy(
        update={
            "session_id": "trip-copy",
            "attachments": [second.attachments[0].model_copy(update={"attachment_id": twice})],
        }
    )
    record = exported.model_copy(
        update={
            "session": exported.session.model_copy(update={"session_id": "trip-copy"}),
            "runs": [first.model_copy(update={"session_id": "trip-copy"}), clash],
        }
    )
    sentence = (
        f"Attachment {twice!r} of session 'trip-copy' comes with two runs; each attachment_id of a record must be "
        "its own, so fix the record."
    )
    checks = RecordChecks()
    try:
        with pytest.raises(FormatError) as checked:  # what `import` runs on every record before writing any
            checks.check(record, "backup.jsonl line 1")
    finally:
        checks.close()
    fix = "fix or remove it, then import again"
    assert str(checked.value) == f"backup.jsonl line 1 cannot be imported: {sentence[:-1]}; {fix}."
    with pytest.raises(InvalidInput) as refused:
        await store.import_session(record)
    assert str(refused.value) == sentence
    assert [record.session.session_id async for record in store.export_sessions(user_id="alice")] == ["trip"]


BIG_PNG = PNG + bytes(4 * 1024 * 1024)
"""A 4 MiB image: about 5.6 MB in base64."""


async def test_a_session_record_holds_references_unless_asked_for_the_bytes(store: Any) -> None:
    alice = store.for_user("alice")
    media = [
        NewAttachment(type="image", mime_type="image/png", data=b64(BIG_PNG), name="big.png"),
        NewAttachment(type="file", mime_type="application/pdf", url="https://example.com/plan.pdf"),
    ]
    run = NewRun.recorded("see", "seen", run_id="r1").model_copy(update={"attachments": media})
    await alice.append_run("trip", run)
    light = await alice.session_record("trip")
    [big, link] = light.runs[0].attachments
    assert (big.data, big.size, big.name, link.data, link.url) == (None, len(BIG_PNG), "big.png", None, media[1].url)
    assert big.uri == f"session://trip/attachments/{big.attachment_id}"
    assert len(light.model_dump_json()) < 10_000  # the 5.6 MB of base64 are not read
    assert (await alice.session_record("trip", last_runs=1)) == light
    whole = await alice.session_record("trip", with_bytes=True)
    assert [a.data for a in whole.runs[0].attachments] == [b64(BIG_PNG), None]
    without_data = [a.model_copy(update={"data": None}) for a in whole.runs[0].attachments]
    assert whole.runs[0].model_copy(update={"attachments": without_data}) == light.runs[0]
    [exported] = [record async for record in store.export_sessions(user_id="alice")]
    assert exported == whole  # the export keeps the bytes
