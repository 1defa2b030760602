"""Stored text shown to a person (in a terminal or a markdown document): control characters made visible so
no stored text can move a cursor, change colours or end a line where it is shown, times in one UTC form,
and search snippets with their matches styled."""

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported by the commands that print, not by the server that serves markdown
    from rich.text import Text

_C0_AND_DEL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_C1 = re.compile("[\x80-\x9f]")
MATCH_MARK = "**"
"""What the store puts on both sides of each match in a search snippet."""


def visible(text: str) -> str:
    """Line ends as newlines; C0 controls and DEL as their control pictures (NUL as ␀), C1 controls as �."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _C1.sub("\ufffd", _C0_AND_DEL.sub(_control_picture, text))


def _control_picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    return "\u2421" if code == 0x7F else chr(0x2400 + code)


def one_line(text: str, limit: int | None = None) -> str:
    """`text` visible on one line (runs of white space as one space), cut to `limit` characters with …"""
    line = " ".join(visible(text).split())
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"


def utc_time(timestamp: str, *, seconds: bool = True) -> str:
    """A stored ISO 8601 time as `2025-03-04 05:06:07 UTC` (to the minute without `seconds`); text that
    is no such time (an imported record may hold anything) as it is, on one line."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return one_line(timestamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def marked_snippet(snippet: str, match_style: str = "bold yellow") -> "Text":
    """A search snippet on one line with the store's `**` marks removed and each match styled (a style
    shows only on a terminal: piped, the snippet is plain text)."""
    from rich.text import Text

    shown = Text()
    for index, part in enumerate(one_line(snippet).split(MATCH_MARK)):
        shown.append(part, style=match_style if index % 2 else "")
    return shown
