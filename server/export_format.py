"""The export file: JSON Lines, one whole session per line, as `export` writes and `import` reads.

Each line is a SessionRecord (store/records.py) with a versioned `format` field first:
`{"format":"mcp-server-sessions/1","session":{...},"runs":[{...,"messages":[...],"tool_calls":[...]}]}`.
The text is deterministic (no spaces, keys in the models' order, state and metadata in their stored
order, text beyond ASCII as UTF-8), so exporting what was imported gives the same bytes.

Only `\\n` ends a line. JSON escapes a carriage return inside a string, but keeps U+2028 and U+2029 as
they are, so the reader splits bytes on `\\n` and never uses a splitter that knows other line ends.
"""

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, NoReturn

from pydantic import ValidationError

from mcp_server_sessions.store import InvalidInput
from mcp_server_sessions.store.record_checks import prepare_record
from mcp_server_sessions.store.records import SessionRecord

FORMAT_NAME = "mcp-server-sessions"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"

_HEAD_BYTES = 65_536
"""A line is read this far first: one that does not start like a JSON object is refused without reading
the rest (a binary file may have no line end at all)."""


class FormatError(Exception):
    """The input holds something `import` cannot take; one sentence naming where and how to fix it."""


class NotJson(FormatError):
    """A line that is not UTF-8 JSON at all: on line 1, the file is likely no export."""


class NewerFormat(FormatError):
    """A line a newer version wrote (or seems to have): the sentence says the fix, upgrading."""


def encode(record: SessionRecord) -> str:
    """The record as one line of an export, its `\\n` included."""
    value = {"format": FORMAT, **record.model_dump(mode="json")}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def decode(line: bytes) -> SessionRecord:
    """One line of an export as a record. Raises FormatError with what is wrong, worded to follow
    "line N" ("is not JSON ...")."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise NotJson("is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise NotJson(f"is not JSON (the error is at character {exc.pos + 1})") from None
    if not isinstance(value, dict):
        raise FormatError("is not a JSON object")
    _check_format(value.pop("format", None))
    try:
        return SessionRecord.model_validate(value, strict=True, extra="forbid")
    except ValidationError as exc:
        raise _validation_problem(exc) from None


def read_export(file: BinaryIO, name: str) -> Iterator[tuple[int, SessionRecord]]:
    """Each record of an export file with its line number, read one line at a time (blank lines are
    passed over). Raises FormatError ("NAME line N is not JSON ...") at the first bad line."""
    for number, line in enumerate(_lines(file), start=1):
        if not line.strip():
            continue
        try:
            record = decode(line)
        except FormatError as exc:
            raise FormatError(_bad_line(name, number, exc)) from None
        yield number, record


def _bad_line(name: str, number: int, exc: FormatError) -> str:
    if isinstance(exc, NotJson) and number == 1:
        return f"{name} is not JSON Lines (line 1 {exc}); name a file that `export` wrote."
    if isinstance(exc, NewerFormat):
        return f"{name} line {number} {exc}."
    return f"{name} line {number} {exc}; {_FIX}."


class RecordChecks:
    """What the store would refuse in a record (store/record_checks.py), and the same session of the
    same user twice in one input; `where` names the record in the sentence ("backup.jsonl line 3").

    The sessions seen so far are kept in a private temporary SQLite file rather than in memory, so
    checking an input of any number of sessions keeps memory flat."""

    def __init__(self) -> None:
        self._seen = sqlite3.connect("")  # "": a temporary file of its own, deleted when closed
        self._seen.execute(
            "CREATE TABLE seen (user_id TEXT, session_id TEXT, at TEXT NOT NULL, PRIMARY KEY (user_id, session_id))"
        )

    def check(self, record: SessionRecord, where: str) -> None:
        """Raises FormatError."""
        try:
            prepare_record(record)
        except InvalidInput as exc:
            raise FormatError(f"{where} cannot be imported: {_unclosed(str(exc))}; {_FIX}.") from None
        key = (record.session.user_id, record.session.session_id)
        first = self._seen.execute("SELECT at FROM seen WHERE user_id = ? AND session_id = ?", key).fetchone()
        if first is not None:
            raise FormatError(
                f"{where} holds session {key[1]!r} of user {key[0]!r} again (first at {first[0]}); "
                "keep one of the two, then import again."
            )
        self._seen.execute("INSERT INTO seen VALUES (?, ?, ?)", (*key, where))

    def close(self) -> None:
        self._seen.close()


_FIX = "fix or remove it, then import again"


def _lines(file: BinaryIO) -> Iterable[bytes]:
    while head := file.readline(_HEAD_BYTES):
        if not head.endswith(b"\n") and head.lstrip()[:1] in (b"{", b""):
            head += file.readline()
        yield head


def _refuse_constant(name: str) -> NoReturn:
    raise FormatError(f"holds {name}, which JSON does not allow")


def _check_format(value: Any) -> None:
    if value == FORMAT:
        return
    if value is None:
        raise FormatError(f'has no "format" field (it should be "{FORMAT}"), so export did not write it')
    shown = json.dumps(value, ensure_ascii=False)[:60]
    name, _, version = value.rpartition("/") if isinstance(value, str) else ("", "", "")
    if name == FORMAT_NAME and version.isdigit() and int(version) > FORMAT_VERSION:
        raise NewerFormat(
            f"is in format {shown}, newer than this version reads; upgrade mcp-server-sessions to import it"
        )
    raise FormatError(f'is in an unknown format {shown} (this version reads "{FORMAT}")')


def _validation_problem(exc: ValidationError) -> FormatError:
    error = exc.errors()[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    if error["type"] == "extra_forbidden":  # refused, not dropped: an import loses nothing without saying so
        return NewerFormat(
            f"has a field this version does not know ({where}); upgrade {FORMAT_NAME} if a newer version wrote "
            "the file, or remove the field"
        )
    if error["type"] == "missing":
        return FormatError(f"lacks the field {where}")
    return FormatError(f"has a wrong value at {where} ({error['msg'][0].lower()}{error['msg'][1:]})")


def _unclosed(sentence: str) -> str:
    """A store sentence made a clause (its full stop left out)."""
    return sentence[:-1] if sentence.endswith(".") else sentence
