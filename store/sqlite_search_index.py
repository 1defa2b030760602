"""The full-text index kept in step with the rows it covers: every write that adds or removes an
indexed row goes through here.

A search_index row is a message (rowid 2 * messages.pk) or a tool call (rowid 2 * tool_calls.pk + 1),
so a hit leads back to its row and a row to its entry. `owner` holds the owner's users.pk as a
digits-only token, so a user scope is part of the MATCH itself rather than a filter over every
user's hits; `session_pk` lets a search leave out sessions being deleted (sqlite_purge.py).
What is indexed: a message's text, except the tool messages a client records beside its tool
calls (the call itself is indexed: its name, arguments and result), and except empty texts.
"""

import sqlite3
from typing import Any, Literal

IndexedTable = Literal["messages", "tool_calls"]

_ADD = "INSERT INTO search_index (rowid, owner, body, session_pk) VALUES (?, ?, ?, ?)"


def add_message(
    raw: sqlite3.Connection, message_pk: int, owner_pk: int, session_pk: int, content: str, searchable: bool
) -> None:
    """Index a new message's text if it is searchable (sqlite_rows.PreparedMessage.searchable)."""
    if searchable:
        raw.execute(_ADD, (message_pk * 2, str(owner_pk), content, session_pk))


def add_tool_call(raw: sqlite3.Connection, call_pk: int, owner_pk: int, session_pk: int, text: str) -> None:
    """Index a new tool call under its `tool_call_text`."""
    raw.execute(_ADD, (call_pk * 2 + 1, str(owner_pk), text, session_pk))


def tool_call_text(tool_name: str, arguments_json: str, result: Any, result_json: str) -> str:
    """What a tool call is found by: its name, its arguments' JSON and its result (a string as it is)."""
    return f"{tool_name} {arguments_json} {result if isinstance(result, str) else result_json}"


def remove(raw: sqlite3.Connection, table: IndexedTable, pks: str) -> None:
    """Drop the entries of the rows of `table` whose pks are in the JSON array `pks` (before the rows go)."""
    rowid = "value * 2" if table == "messages" else "value * 2 + 1"
    raw.execute(f"DELETE FROM search_index WHERE rowid IN (SELECT {rowid} FROM json_each(?))", (pks,))


def indexed_row(rowid: int) -> tuple[IndexedTable, int]:
    """The table and pk of the row a search_index entry stands for."""
    return ("messages" if rowid % 2 == 0 else "tool_calls"), rowid // 2
