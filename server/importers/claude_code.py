"""`import --from claude-code`: Claude Code's JSONL transcripts as SessionRecords, one transcript at a
time. PATH is a transcript (`<session uuid>.jsonl`) or a directory holding them, such as
`~/.claude/projects/<project>/` or `~/.claude/projects/` (read recursively, in path order).

What goes where:
- A transcript is a session: its id is the entries' `sessionId` (the one the file is named after when
  a resumed conversation's copied entries carry an earlier one); its name the transcript's `summary`
  line (the one about this transcript's messages, else the last one), or else its first prompt cut
  short; its times those of its first and last entries; `imported_from` in its metadata names the
  source, the working directory, git branch and Claude Code version. The summary Claude Code writes
  when it compacts the conversation becomes the session's summary.
- Each prompt the person typed starts a run whose id is the prompt entry's uuid (so a transcript that
  grew adds only its new turns when imported again), holding everything up to the next prompt: the
  assistant's text is the answer; each `tool_use` with the `tool_result` that came back for it is a
  tool call (the result's text, is_error, the time between the two as its duration); the token usage
  of each model response is summed into the metrics (once per response, though Claude Code repeats it
  on each entry of a response), with the model of the last one.
- The transcript's last turn while it is still in progress (it ends without a final answer: a tool
  call waits for its result, the last response stopped to call tools, or no assistant text came after
  the last tool result) is left out, with the session's run count, token totals and last update
  describing the turns before it: it comes in whole with the import after it completes (a merge import
  never rewrites a run it holds, so importing it cut short would keep it cut short). A turn that ended
  otherwise (interrupted, an API error) is kept as it is.
- Left out: sidechain entries (a subagent's own conversation; its report comes back as the result of
  the tool that started it), meta entries (caveats, hook feedback, a command's expanded prompt), local
  command output, a command that got no reply (/model, /clear ...), the compaction summary as a
  prompt, thinking blocks, and entries of other types (file snapshots, system events, queue
  operations). "[Request interrupted by user]" ends its run `cancelled`; Claude Code's own API error
  message ends it in `error`.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp_server_sessions.store.limits import MAX_JSON_BYTES
from mcp_server_sessions.store.models import Session
from mcp_server_sessions.store.records import SessionRecord

from . import SourceError
from .claude_code_turns import OpenTurn, message_text
from .fitting import as_list, as_object, fitted_id, fitted_name, fitted_text, from_epoch, from_iso, short_name
from .turns import Turn, runs_of, session_record

_COMMAND = re.compile(r"<command-name>(.*?)</command-name>", re.DOTALL)
_COMMAND_ARGS = re.compile(r"<command-args>(.*?)</command-args>", re.DOTALL)
_LOCAL_OUTPUT = ("<local-command-stdout>", "<local-command-stderr>", "<local-command-caveat>")
_INTERRUPTED = "[Request interrupted by user"
_FACTS = {"cwd": "cwd", "gitBranch": "git_branch", "version": "claude_code_version"}
_HINT = "name a transcript Claude Code wrote under ~/.claude/projects/ (an Agno database goes with --from agno)"


def claude_code_records(path: Path, user_id: str) -> Iterator[SessionRecord]:
    """A session of `user_id` per transcript at `path` (a transcript with no prompt gives none);
    SourceError if `path` holds no transcript or a file that is not one."""
    for file in _transcript_files(path):
        transcript = _Transcript(file)
        for number, entry in _entries(file):
            transcript.add(entry, number)
        record = transcript.record(user_id)
        if record is not None:
            yield record


def _transcript_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(found for found in path.rglob("*.jsonl") if found.is_file())
        if not files:
            raise SourceError(
                f"{path} holds no Claude Code transcripts (*.jsonl files); name a transcript or a project "
                "directory such as ~/.claude/projects/<project>/."
            )
        return files
    raise SourceError(f"There is no file or directory at {path}; {_HINT}.")


def _entries(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each entry of the transcript with its line number; a last line still being written is skipped."""
    read_any = False
    try:
        with file.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    if read_any and not line.endswith(b"\n"):
                        return  # Claude Code is appending it as we read
                    raise SourceError(f"{file} is not a transcript: line {number} is not JSON; {_HINT}.") from None
                if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                    raise SourceError(
                        f"{file} is not a transcript: line {number} is not a Claude Code entry (a JSON object with "
                        f"a type); {_HINT}."
                    )
                read_any = True
                yield number, entry
    except OSError:
        raise SourceError(f"{file} could not be read; check that it is there and that you may read it.") from None


class _Transcript:
    """What is read of one transcript so far: its facts, its finished turns, the turn still open."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.session_ids: list[str] = []
        """The sessionIds the entries carry, in order of first appearance."""
        self.facts: dict[str, str] = {}
        self.first_time: str | None = None
        self.last_time: str | None = None
        self.summaries: list[tuple[str, object]] = []
        self.uuids: set[str] = set()
        self.compaction: tuple[str, str] | None = None
        self.turns: list[Turn] = []
        self.open: OpenTurn | None = None
        self.settled_time: str | None = None
        """The last time before the open turn's prompt: the session's last update if that turn is left out."""

    def add(self, entry: dict[str, Any], number: int) -> None:
        kind, uuid = entry["type"], entry.get("uuid")
        if kind == "summary" and isinstance(entry.get("summary"), str):
            self.summaries.append((entry["summary"], entry.get("leafUuid")))
        if kind not in ("user", "assistant") or entry.get("isSidechain"):
            return
        if isinstance(uuid, str):
            self.uuids.add(uuid)
        time = from_iso(entry.get("timestamp")) or self.last_time or from_epoch(self.file.stat().st_mtime) or ""
        message = as_object(entry.get("message"))
        if entry.get("isCompactSummary"):
            self.compaction = (message_text(message.get("content")), time)
            return
        if entry.get("isMeta") or entry.get("isVisibleInTranscriptOnly"):
            return
        self.first_time = self.first_time or time
        before, self.last_time = self.last_time, max(self.last_time or time, time)
        session_id = entry.get("sessionId")
        if isinstance(session_id, str) and session_id not in self.session_ids:
            self.session_ids.append(session_id)
            self.facts = self.facts or {
                name: entry[key] for key, name in _FACTS.items() if isinstance(entry.get(key), str)
            }
        if kind == "assistant":
            if self.open is not None:
                self.open.reply(entry, message, time)
        else:
            self._user(message, time, uuid if isinstance(uuid, str) else f"{self.file.name}:{number}", before)

    def _user(self, message: dict[str, Any], time: str, uuid: str, before: str | None) -> None:
        content = message.get("content")
        results = [block for block in as_list(content) if as_object(block).get("type") == "tool_result"]
        if results:
            if self.open is not None:
                self.open.answer(results, time)
            return
        text = message_text(content)
        if text.startswith(_INTERRUPTED):
            if self.open is not None:
                self.open.interrupted(time)
            return
        if not text.strip() or text.lstrip().startswith(_LOCAL_OUTPUT):
            return
        self._finish()
        command = _COMMAND.search(text)
        if command is not None:
            arguments = _COMMAND_ARGS.search(text)
            text = f"{command.group(1)} {arguments.group(1) if arguments else ''}".strip()
        self.open = OpenTurn(fitted_id(uuid, "run"), text, time, command=command is not None)
        self.settled_time = before

    def _finish(self) -> None:
        if self.open is not None and (turn := self.open.turn()) is not None:
            self.turns.append(turn)
        self.open = None

    def record(self, user_id: str) -> SessionRecord | None:
        """The transcript as a session of `user_id` (its last turn left out while in progress); None if it
        holds no other turn."""
        if self.open is not None and self.open.in_progress:
            self.open, self.last_time = None, self.settled_time
        self._finish()
        if not self.turns or self.first_time is None or self.last_time is None:
            return None
        # A resumed conversation's file starts with entries copied from the earlier one, which may carry
        # the earlier sessionId: the file's own is the one its name gives, else the last one.
        own = self.file.stem in self.session_ids or not self.session_ids
        raw_id = self.file.stem if own else self.session_ids[-1]
        session_id = fitted_id(raw_id, "session")
        origin: dict[str, Any] = {"source": "claude-code", **self.facts}
        if session_id != raw_id:
            origin["session_id"] = raw_id
        ours = [text for text, leaf in self.summaries if leaf in self.uuids]
        titles = ours or [text for text, _ in self.summaries]
        session = Session(
            session_id=session_id,
            user_id=user_id,
            name=fitted_name(titles[-1]) if titles else short_name(self.turns[0].input),
            state={},
            metadata={"imported_from": origin},
            agent=None,
            summary=None,
            run_count=0,
            created_at=self.first_time,
            updated_at=self.last_time,
        )
        summary: tuple[str, list[str], str] | None = None
        if self.compaction is not None:
            text, time = self.compaction
            summary = (fitted_text(text, MAX_JSON_BYTES // 2), [], time)
        runs = [run for turn in self.turns for run in runs_of(turn, session_id)]
        return session_record(session, runs, summary)
