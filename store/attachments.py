"""Media attached to a run's input: what a client sends, how it is checked, and how it is read back.

An attachment is an image, an audio clip or a file, sent either as base64 `data` (decoded, checked and
stored as bytes with the run, in the same transaction) or as an http(s) `url` (stored as the address,
never fetched). Every check happens before any write, so a bad attachment stores nothing; each error
names the attachment by its index. Tool results carry references only (AttachmentRef); the bytes are
read through the `session://{session_id}/attachments/{attachment_id}` resource.
"""

import base64
import binascii
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidInput
from .limits import (
    MAX_ATTACHMENT_BYTES_PER_RUN,
    MAX_ATTACHMENT_NAME_CHARS,
    MAX_ATTACHMENT_URL_CHARS,
    MAX_ATTACHMENTS_PER_RUN,
    check_id,
    text_bytes,
)

if TYPE_CHECKING:
    from .models import ChatHistoryPage  # models.py imports this module

AttachmentType = Literal["image", "audio", "file"]

MIME_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("image/png", "image/jpeg", "image/gif", "image/webp"),
    "audio": ("audio/mpeg", "audio/wav", "audio/ogg", "audio/webm", "audio/flac", "audio/mp4"),
    "file": ("application/pdf", "text/plain", "text/markdown", "text/csv", "application/json"),
}
"""The mime types each attachment type accepts."""

TEXT_MIME_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
"""Types whose bytes must be UTF-8 text."""

_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "application/pdf": lambda b: b.startswith(b"%PDF-"),
    "audio/mpeg": lambda b: b.startswith(b"ID3") or (len(b) > 1 and b[0] == 0xFF and b[1] & 0xE0 == 0xE0),
    "audio/wav": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WAVE",
    "audio/ogg": lambda b: b.startswith(b"OggS"),
    "audio/webm": lambda b: b.startswith(b"\x1a\x45\xdf\xa3"),
    "audio/flac": lambda b: b.startswith(b"fLaC"),
    "audio/mp4": lambda b: b[4:8] == b"ftyp",
}
"""How the first bytes of each binary type look; a file that does not start so is not of that type."""

ATTACHMENT_URI = "session://{session_id}/attachments/{attachment_id}"


class NewAttachment(BaseModel):
    """An attachment as a client sends it with a run's input."""

    model_config = ConfigDict(extra="forbid")

    type: AttachmentType = Field(description="image, audio or file.")
    mime_type: str = Field(
        max_length=100,
        description="image/png|jpeg|gif|webp; audio/mpeg|wav|ogg|webm|flac|mp4; "
        "application/pdf|json; text/plain|markdown|csv.",
    )
    data: str | None = Field(default=None, description="The bytes as standard base64 (or give url).")
    url: str | None = Field(default=None, description="An http(s) address of it instead of data (not fetched).")
    name: str | None = Field(default=None, max_length=MAX_ATTACHMENT_NAME_CHARS, description="A file name.")


class RecordedAttachment(NewAttachment):
    """An attachment as an import writes it back: with the id it had when exported."""

    attachment_id: str


class AttachmentRef(BaseModel):
    """An attachment as a tool returns it: what it is, and the resource that holds its bytes."""

    attachment_id: str
    type: AttachmentType
    mime_type: str
    name: str | None
    size: int = Field(description="Bytes (0 for a url).")
    url: str | None = Field(description="Its address, if sent as a url.")
    uri: str = Field(description="The resource holding its bytes.")


class AttachmentRecord(AttachmentRef):
    """An attachment as an export holds it: its bytes in base64."""

    data: str | None = None


@dataclass(frozen=True)
class PreparedAttachment:
    """An attachment checked and decoded, ready to be written with its run."""

    attachment_id: str
    type: str
    mime_type: str
    name: str | None
    url: str | None
    data: bytes | None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0

    def ref(self, session_id: str) -> AttachmentRef:
        return AttachmentRef(
            attachment_id=self.attachment_id,
            type=self.type,  # type: ignore[arg-type]  # checked against MIME_TYPES
            mime_type=self.mime_type,
            name=self.name,
            size=self.size,
            url=self.url,
            uri=attachment_uri(session_id, self.attachment_id),
        )


REF_COLUMNS = "a.attachment_id, a.type, a.mime_type, a.name, a.size, a.url"
"""The attachments columns `row_ref` reads (the table aliased `a`), on both backends."""


def row_ref(row: Any, session_id: str, name: str | None) -> AttachmentRef:
    """An attachments row of the session (a sqlite3.Row or an asyncpg.Record) as a reference; `name` as the
    backend reads it."""
    return AttachmentRef(
        attachment_id=row["attachment_id"],
        type=row["type"],
        mime_type=row["mime_type"],
        name=name,
        size=row["size"],
        url=row["url"],
        uri=attachment_uri(session_id, row["attachment_id"]),
    )


def stored_record(ref: AttachmentRef, data: bytes | None) -> AttachmentRecord:
    """An attachment as a record carries it: its reference, and its bytes in base64 when they were read."""
    return AttachmentRecord(**dict(ref), data=base64.b64encode(data).decode("ascii") if data is not None else None)


def user_run_ids(page: "ChatHistoryPage") -> list[str]:
    """The runs whose input (user message) is on the page: those whose attachments the page shows."""
    return sorted({message.run_id for message in page.messages if message.role == "user"})


def with_page_refs(page: "ChatHistoryPage", refs: Iterable[tuple[str, AttachmentRef]]) -> "ChatHistoryPage":
    """The page with each user message carrying the references of its run (`refs`: run_id and reference,
    in the order they were sent)."""
    by_run: dict[str, list[AttachmentRef]] = {}
    for run_id, ref in refs:
        by_run.setdefault(run_id, []).append(ref)
    for message in page.messages:
        if message.role == "user":
            message.attachments = by_run.get(message.run_id, [])
    return page


def attachment_uri(session_id: str, attachment_id: str) -> str:
    """The resource URI of an attachment (`:` and `@` of a session id percent-encoded, as the template reads them)."""
    return f"session://{quote(session_id, safe='')}/attachments/{attachment_id}"


def prepare_attachments(attachments: Sequence[NewAttachment]) -> tuple[PreparedAttachment, ...]:
    """Each attachment checked and decoded; InvalidInput naming the first bad one (by index) otherwise."""
    if len(attachments) > MAX_ATTACHMENTS_PER_RUN:
        raise InvalidInput(
            f"A run may carry at most {MAX_ATTACHMENTS_PER_RUN} attachments; got {len(attachments)}, "
            "so send the rest with another run."
        )
    prepared: list[PreparedAttachment] = []
    total = 0
    for index, attachment in enumerate(attachments):
        item = _prepared(attachment, f"attachments[{index}]", MAX_ATTACHMENT_BYTES_PER_RUN - total)
        total += item.size
        prepared.append(item)
    ids = [item.attachment_id for item in prepared]
    if len(set(ids)) != len(ids):
        raise InvalidInput("Two attachments of one run have the same attachment_id; each must be its own.")
    return tuple(prepared)


def _prepared(attachment: NewAttachment, what: str, room: int) -> PreparedAttachment:
    allowed = MIME_TYPES.get(attachment.type)
    if allowed is None:
        raise InvalidInput(f"{what}.type must be image, audio or file; got {attachment.type!r}.")
    if attachment.mime_type not in allowed:
        raise InvalidInput(
            f"{what}.mime_type {attachment.mime_type[:100]!r} is not accepted for type {attachment.type}; "
            f"use one of {', '.join(allowed)}."
        )
    if attachment.name is not None:
        _check_name(attachment.name, what)
    if (attachment.data is None) == (attachment.url is None):
        raise InvalidInput(f"{what} must have exactly one of data (base64) and url; give one, not both or neither.")
    attachment_id = (
        check_id(attachment.attachment_id, f"{what}.attachment_id")
        if isinstance(attachment, RecordedAttachment)
        else f"att-{uuid.uuid4().hex}"
    )
    data = _decoded(attachment, what, room) if attachment.data is not None else None
    url = _checked_url(attachment.url, what) if attachment.url is not None else None
    return PreparedAttachment(attachment_id, attachment.type, attachment.mime_type, attachment.name, url, data)


def _check_name(name: str, what: str) -> None:
    if len(name) > MAX_ATTACHMENT_NAME_CHARS:
        raise InvalidInput(f"{what}.name is over {MAX_ATTACHMENT_NAME_CHARS} characters; send a shorter name.")
    text_bytes(name, f"{what}.name")
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in name):
        raise InvalidInput(f"{what}.name contains control characters; send a plain file name.")


def _decoded(attachment: NewAttachment, what: str, room: int) -> bytes:
    """The attachment's bytes: strict base64 within `room` bytes, of the type it says it is."""
    text = attachment.data or ""
    limit = f"{MAX_ATTACHMENT_BYTES_PER_RUN:,} bytes of attachments per run"
    if len(text) > (room + 2) // 3 * 4:  # refused before decoding: its bytes cannot fit
        raise InvalidInput(f"{what} is about {len(text) * 3 // 4:,} bytes, over the limit of {limit}; send less.")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidInput(
            f"{what}.data is not valid base64; send the bytes in standard base64 (A-Z, a-z, 0-9, +, /, "
            "= padding) with no spaces or line breaks."
        ) from None
    if not data:
        raise InvalidInput(f"{what}.data is empty; send the file's bytes.")
    if len(data) > room:
        raise InvalidInput(f"{what} is {len(data):,} bytes, over the limit of {limit}; send less.")
    signature = _SIGNATURES.get(attachment.mime_type)
    if signature is not None and not signature(data):
        raise InvalidInput(
            f"{what}.data does not start as {attachment.mime_type} data does; "
            "send the mime_type that matches these bytes."
        )
    if attachment.mime_type in TEXT_MIME_TYPES:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{what}.data is not UTF-8 text, as {attachment.mime_type} must be; send it as UTF-8."
            ) from None
    return data


def _checked_url(url: str, what: str) -> str:
    if len(url) > MAX_ATTACHMENT_URL_CHARS:
        raise InvalidInput(f"{what}.url is over {MAX_ATTACHMENT_URL_CHARS:,} characters; send a shorter address.")
    parts = urlsplit(url) if url.isascii() and url.isprintable() and " " not in url else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"{what}.url must be an http or https address (ASCII, no spaces); send one, or the bytes as data."
        )
    return url


def attachment_missing(session_id: str, attachment_id: str) -> InvalidInput:
    """The error for an attachment the session does not have (another user's reads the same)."""
    return InvalidInput(
        f"Session {session_id!r} has no attachment {attachment_id!r}; call get_chat_history to see its attachments."
    )


def recorded_attachment(record: AttachmentRecord) -> RecordedAttachment:
    """An exported attachment as an import writes it back, with its id (checked again like a new one)."""
    return RecordedAttachment.model_construct(
        type=record.type,
        mime_type=record.mime_type,
        data=record.data,
        url=record.url,
        name=record.name,
        attachment_id=record.attachment_id,
    )


def attachment_taken(attachment_id: str) -> InvalidInput:
    """The error for an imported attachment whose id the session already holds on another run."""
    return InvalidInput(
        f"The session already has an attachment {attachment_id!r} on another run; each attachment_id of a "
        "session must be its own, so fix the record."
    )
