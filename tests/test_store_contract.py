"""The session store contract: every backend must pass this file unchanged (see the `store` fixture)."""

import pytest

from mcp_server_sessions.store import (
    AgentConfig,
    InvalidInput,
    NewRun,
    NewToolCall,
    RunMetrics,
    SessionChanged,
    SessionNotFound,
    SessionStore,
)

pytestmark = pytest.mark.anyio


def turn(run_id: str, text: str = "hello", reply: str = "hi there", calls: int = 0) -> NewRun:
    tool_calls = [NewToolCall(tool_name=f"tool{i}", arguments={"i": i}, result=f"result {i}") for i in range(calls)]
    return NewRun.recorded(text, reply, tool_calls, run_id=run_id)


async def test_start_session_creates_then_returns_the_same_session(store: SessionStore) -> None:
    alice = store.for_user("alice")
    agent = AgentConfig(model="claude-test", num_history_runs=5)
    first, created = await alice.start_session("s1", name="Trip", state={"a": 1}, metadata={"m": 2}, agent=agent)
    assert created
    assert (first.session_id, first.user_id, first.name, first.state, first.metadata) == (
        "s1",
        "alice",
        "Trip",
        {"a": 1},
        {"m": 2},
    )
    assert first.agent is not None and first.agent.model_dump() == agent.model_dump()
    assert first.summary is None and first.run_count == 0
    assert first.created_at.endswith("Z") and first.created_at == first.updated_at

    again, created_again = await alice.start_session("s1", name="Other", state={"b": 2})
    assert not created_again
    assert again == first


async def test_start_session_without_id_makes_a_uuid(store: SessionStore) -> None:
    alice = store.for_user("alice")
    one, _ = await alice.start_session(None)
    two, _ = await alice.start_session(None)
    assert len(one.session_id) == 36 and one.session_id != two.session_id


async def test_append_run_starts_the_session_and_returns_the_whole_run(store: SessionStore) -> None:
    alice = store.for_user("alice")
    run, stored = await alice.append_run("new", turn("r1", calls=2))
    assert stored
    assert (run.run_id, run.session_id, run.status, run.input, run.content) == (
        "r1",
        "new",
        "completed",
        "hello",
        "hi there",
    )
    assert [c.tool_name for c in run.tool_calls] == ["tool0", "tool1"]
    assert all(c.run_id == "r1" and c.tool_call_id for c in run.tool_calls)
    session = await alice.get_session("new")
    assert session.run_count == 1 and session.updated_at >= session.created_at


async def test_append_run_with_a_known_run_id_stores_nothing_twice(store: SessionStore) -> None:
    alice = store.for_user("alice")
    first, stored = await alice.append_run("s1", turn("r1", calls=1))
    retry, stored_again = await alice.append_run("s1", turn("r1", text="changed", calls=1))
    assert stored and not stored_again
    assert retry == first
    assert (await alice.get_session("s1")).run_count == 1
    history = await alice.get_chat_history("s1", include_tool_messages=True)
    assert len(history.messages) == 3
    assert len((await alice.get_tool_calls("s1")).tool_calls) == 1


async def test_metrics_round_trip(store: SessionStore) -> None:
    run = turn("r1")
    run.metrics = RunMetrics(input_tokens=10, output_tokens=5, total_tokens=15, duration_ms=12.5, model="m")
    stored, _ = await store.for_user("alice").append_run("s1", run)
    assert stored.metrics.model_dump() == run.metrics.model_dump()


async def test_chat_history_is_oldest_first_and_hides_tool_messages_by_default(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for i in range(3):
        await alice.append_run("s1", turn(f"r{i}", text=f"q{i}", reply=f"a{i}", calls=1))
    plain = await alice.get_chat_history("s1")
    assert [(m.role, m.content, m.run_id) for m in plain.messages] == [
        ("user", "q0", "r0"),
        ("assistant", "a0", "r0"),
        ("user", "q1", "r1"),
        ("assistant", "a1", "r1"),
        ("user", "q2", "r2"),
        ("assistant", "a2", "r2"),
    ]
    assert plain.next_cursor is None and plain.session_id == "s1"
    full = await alice.get_chat_history("s1", include_tool_messages=True)
    assert [m.role for m in full.messages[:3]] == ["user", "tool", "assistant"]


async def test_chat_history_last_n_runs_and_pages(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for i in range(5):
        await alice.append_run("s1", turn(f"r{i}", text=f"q{i}", reply=f"a{i}"))
    last_two = await alice.get_chat_history("s1", last_n_runs=2)
    assert [m.content for m in last_two.messages] == ["q3", "a3", "q4", "a4"]
    more_than_there_are = await alice.get_chat_history("s1", last_n_runs=50)
    assert len(more_than_there_are.messages) == 10

    seen: list[str] = []
    cursor = None
    while True:
        page = await alice.get_chat_history("s1", limit=3, cursor=cursor)
        assert len(page.messages) <= 3
        seen += [m.content for m in page.messages]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"{kind}{i}" for i in range(5) for kind in ("q", "a")]


async def test_tool_calls_are_newest_first_filtered_and_paged(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for i in range(3):
        await alice.append_run("s1", turn(f"r{i}", calls=2))
    page = await alice.get_tool_calls("s1", limit=4)
    assert [(c.run_id, c.tool_name) for c in page.tool_calls] == [
        ("r2", "tool1"),
        ("r2", "tool0"),
        ("r1", "tool1"),
        ("r1", "tool0"),
    ]
    rest = await alice.get_tool_calls("s1", limit=4, cursor=page.next_cursor)
    assert [(c.run_id, c.tool_name) for c in rest.tool_calls] == [("r0", "tool1"), ("r0", "tool0")]
    assert rest.next_cursor is None
    only = await alice.get_tool_calls("s1", tool_name="tool0")
    assert [c.run_id for c in only.tool_calls] == ["r2", "r1", "r0"]
    assert only.tool_calls[0].arguments == {"i": 0} and only.tool_calls[0].result == "result 0"


async def test_list_sessions_sorts_pages_counts_and_filters(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for i in range(5):
        await alice.start_session(f"s{i}", name=f"Trip {i}" if i % 2 == 0 else f"Work_{i}")
    await alice.append_run("s1", turn("r"))  # s1 becomes the most recently updated
    newest = await alice.list_sessions(limit=2)
    assert newest.total == 5 and [s.session_id for s in newest.sessions] == ["s1", "s4"]
    ids: list[str] = []
    cursor = None
    while True:
        page = await alice.list_sessions(limit=2, cursor=cursor, sort_by="created_at", order="asc")
        ids += [s.session_id for s in page.sessions]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == ["s0", "s1", "s2", "s3", "s4"]
    trips = await alice.list_sessions(name_contains="trip")
    assert trips.total == 3 and {s.session_id for s in trips.sessions} == {"s0", "s2", "s4"}
    literal = await alice.list_sessions(name_contains="_")
    assert {s.session_id for s in literal.sessions} == {"s1", "s3"}
    assert (await store.for_user("nobody").list_sessions()).total == 0


async def test_a_cursor_from_another_sort_order_is_refused(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for i in range(3):
        await alice.start_session(f"s{i}")
    page = await alice.list_sessions(limit=1)
    with pytest.raises(InvalidInput, match="cursor"):
        await alice.list_sessions(limit=1, cursor=page.next_cursor, order="asc")


async def test_update_session_merges_or_replaces_state(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await alice.start_session("s1", name="old", state={"a": 1, "b": 2}, metadata={"x": 1})
    merged = await alice.update_session("s1", state={"b": 3, "c": 4})
    assert merged.state == {"a": 1, "b": 3, "c": 4} and merged.name == "old" and merged.metadata == {"x": 1}
    replaced = await alice.update_session("s1", state={"z": 0}, merge_state=False, metadata={"y": 2})
    assert replaced.state == {"z": 0} and replaced.metadata == {"y": 2}
    renamed = await alice.update_session("s1", name="new")
    assert renamed.name == "new" and renamed.state == {"z": 0}
    cleared = await alice.update_session("s1", name="")
    assert cleared.name is None
    assert cleared.updated_at >= merged.updated_at


async def test_delete_session_removes_runs_history_tool_calls_and_search(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await alice.append_run("s1", turn("r1", text="zebra crossing", calls=1))
    await alice.append_run("s2", turn("r1", text="zebra stripes"))
    await alice.delete_session("s1")
    with pytest.raises(SessionNotFound):
        await alice.get_session("s1")
    with pytest.raises(SessionNotFound):
        await alice.get_chat_history("s1")
    with pytest.raises(SessionNotFound):
        await alice.delete_session("s1")
    hits = await alice.search("zebra")
    assert [h.session_id for h in hits] == ["s2"]
    assert (await alice.search("tool0")) == []
    again, created = await alice.start_session("s1")
    assert created and again.run_count == 0


async def test_unknown_sessions_are_not_found(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for read in (
        alice.get_session("missing"),
        alice.get_chat_history("missing"),
        alice.get_tool_calls("missing"),
        alice.update_session("missing", name="x"),
        alice.delete_session("missing"),
        alice.begin_run("missing", "r1", "hi"),
    ):
        with pytest.raises(SessionNotFound, match="missing"):
            await read


async def test_session_ids_are_per_user(store: SessionStore) -> None:
    as_alice, as_bob = store.for_user("alice"), store.for_user("bob")
    await as_alice.append_run("s1", turn("r1", text="alice secret"))
    await as_bob.append_run("s1", turn("r1", text="bob note"))
    alice = await as_alice.get_chat_history("s1")
    bob = await as_bob.get_chat_history("s1")
    assert alice.messages[0].content == "alice secret"
    assert bob.messages[0].content == "bob note"
    assert await as_bob.search("secret") == []
    with pytest.raises(SessionNotFound):
        await store.for_user("carol").get_session("s1")


async def test_text_is_stored_faithfully(store: SessionStore) -> None:
    alice = store.for_user("alice")
    text = "nul\x00 bell\x07 tab\t rtl\u202e emoji 🚣 combining e\u0301 \uffff end"
    await alice.append_run("s1", turn("r1", text=text, reply=text))
    history = await alice.get_chat_history("s1")
    assert [m.content for m in history.messages] == [text, text]


async def test_a_rejected_run_writes_nothing(store: SessionStore) -> None:
    alice = store.for_user("alice")
    bad = turn("r1", text="x" * 1_000_001)
    with pytest.raises(InvalidInput, match="1,000,000"):
        await alice.append_run("s1", bad)
    with pytest.raises(SessionNotFound):
        await alice.get_session("s1")
    surrogate = turn("r2", reply="bad \ud800")
    with pytest.raises(InvalidInput, match="surrogate"):
        await alice.append_run("s1", surrogate)
    assert (await alice.list_sessions()).total == 0


async def test_begin_run_then_append_completes_it(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await alice.start_session("s1")
    running = await alice.begin_run("s1", "r1", "question")
    assert running.status == "running" and running.content is None
    assert (await alice.get_session("s1")).run_count == 1
    assert (await alice.get_chat_history("s1", last_n_runs=1)).messages == []
    with pytest.raises(InvalidInput, match="still in progress"):  # record_run cannot take over a begun run
        await alice.append_run("s1", turn("r1", text="question", reply="hijack"))
    done, stored = await alice.append_run("s1", turn("r1", text="question", reply="answer"), finishing=True)
    assert stored and done.status == "completed" and done.content == "answer"
    assert (await alice.get_session("s1")).run_count == 1
    with pytest.raises(InvalidInput, match="already exists"):
        await alice.begin_run("s1", "r1", "again")


async def test_runs_of_a_live_process_are_not_recovered(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await alice.start_session("s1")
    await alice.begin_run("s1", "r1", "question")
    assert await store.recover_interrupted_runs() == 0


async def test_a_history_cursor_belongs_to_its_session(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for session_id in ("a", "b"):
        for i in range(2):
            await alice.append_run(session_id, turn(f"r{i}"))
    page = await alice.get_chat_history("a", limit=1)
    with pytest.raises(InvalidInput, match="cursor"):
        await alice.get_chat_history("b", cursor=page.next_cursor)
    await alice.append_run("a", turn("r9", calls=2))
    calls = await alice.get_tool_calls("a", limit=1)
    with pytest.raises(InvalidInput, match="cursor"):
        await alice.get_tool_calls("b", cursor=calls.next_cursor)


async def test_finishing_a_run_never_recreates_a_deleted_session(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await alice.start_session("s1")
    await alice.begin_run("s1", "r1", "question")
    await alice.delete_session("s1")
    with pytest.raises(SessionNotFound):
        await alice.append_run("s1", turn("r1", text="question"), finishing=True)
    with pytest.raises(SessionNotFound):
        await alice.get_session("s1")


async def test_a_conditional_delete_deletes_only_the_session_as_it_was_read(store: SessionStore) -> None:
    """What `prune` relies on: a run recorded after the session was read keeps it from being deleted unseen."""
    alice = store.for_user("alice")
    read, _ = await alice.start_session("old")
    await alice.append_run("old", turn("r1"))
    with pytest.raises(SessionChanged) as raised:
        await alice.delete_session("old", if_updated_at=read.updated_at)
    assert str(raised.value) == "Session 'old' changed since it was read; read it again, then decide."
    assert (await alice.get_session("old")).run_count == 1
    with pytest.raises(SessionChanged):
        await alice.delete_session("old", if_updated_at="not a time")
    await alice.delete_session("old", if_updated_at=(await alice.get_session("old")).updated_at)
    with pytest.raises(SessionNotFound):
        await alice.get_session("old")
    await alice.start_session("other")
    with pytest.raises(SessionNotFound):  # another user's session is not found, whatever the condition
        await store.for_user("bob").delete_session("other", if_updated_at=read.updated_at)
