"""A write storm for the crash tests: append runs to a SQLite store as fast as possible.

    python tests/writer_storm.py DB WRITER COUNT

Appends COUNT runs (0: until SIGTERM, which ends it cleanly after the run in flight, or until
SIGKILL) for user "storm", half into the session "shared" and the
rest into the writer's own sessions, and prints "SESSION RUN_ID" on stdout, flushed, after each
append_run returns: every printed line is a run the store acknowledged.
"""

import asyncio
import signal
import sys

from mcp_server_sessions.store import NewMessage, NewRun, SqliteStore

USER = "storm"


def planned(writer: str, index: int) -> tuple[str, NewRun]:
    session_id = "shared" if index % 2 == 0 else f"{writer}-{index % 4}"
    question = f"storm question {writer} {index} about kayaking the fjords"
    answer = f"storm answer {writer} {index}: paddle north"
    run = NewRun(
        run_id=f"{writer}-{index}",
        input=question,
        content=answer,
        messages=[NewMessage(role="user", content=question), NewMessage(role="assistant", content=answer)],
    )
    return session_id, run


async def storm(database: str, writer: str, count: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    store = await SqliteStore.open(database)
    try:
        index = 0
        while (count == 0 or index < count) and not stop.is_set():
            session_id, run = planned(writer, index)
            await store.for_user(USER).append_run(session_id, run)
            sys.stdout.write(f"{session_id} {run.run_id}\n")
            sys.stdout.flush()
            index += 1
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(storm(sys.argv[1], sys.argv[2], int(sys.argv[3])))
