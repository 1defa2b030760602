"""A run's attachments as the Messages API takes them: content blocks of the new user message.

Images go as image blocks and PDFs as document blocks (base64, or the url for the API to fetch); text
files (plain, markdown, CSV, JSON) as plain-text documents; a text file sent as a url, and audio, which
the API does not take, as a short note saying what is attached and that it was not sent. The blocks come
before the message's text, as the API advises for images. Only the run's own attachments are sent:
earlier runs come back into context as their stored text, without their media. A paused run's resume
state keeps references instead of the bytes (`without_data`), read back when it continues (`with_data`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from mcp_server_sessions.store import Run, UserSessions
from mcp_server_sessions.store.attachments import TEXT_MIME_TYPES, NewAttachment, attachment_missing

from .prompt import Utterance

if TYPE_CHECKING:
    from anthropic.types import ContentBlockParam, DocumentBlockParam, ImageBlockParam, TextBlockParam


def content_blocks(attachments: Sequence[NewAttachment]) -> list[ContentBlockParam]:
    """The blocks of attachments already checked by the store's rules (store/attachments.py)."""
    return [_block(index, attachment) for index, attachment in enumerate(attachments)]


def attach(conversation: list[Utterance], attachments: Sequence[NewAttachment]) -> None:
    """The attachments' blocks put before the new message's text (the last block of the last user turn)."""
    if not attachments:
        return
    last = conversation[-1]
    last.content = [*last.content[:-1], *content_blocks(attachments), last.content[-1]]


def without_data(conversation: list[Utterance]) -> list[Utterance]:
    """The conversation as a paused run's resume state keeps it: each attachment's bytes (the image and
    document blocks with a base64 or text source, which only the run's own attachments make) replaced by
    the reference {"type": "attachment", "index": n}, the n-th such block; the bytes are the run's already."""
    count = 0
    kept = []
    for utterance in conversation:
        content: list[ContentBlockParam] = []
        for block in utterance.content:
            if _source_type(block) in ("base64", "text"):
                block = cast("ContentBlockParam", {**block, "source": {"type": "attachment", "index": count}})
                count += 1
            content.append(block)
        kept.append(Utterance(utterance.role, content))
    return kept


async def with_data(sessions: UserSessions, run: Run, conversation: list[Utterance]) -> list[Utterance]:
    """A conversation `without_data` kept, its attachments' bytes read back from the run's attachments.
    Raises InvalidInput (or SessionNotFound) when one is gone."""
    with_sources = [ref for ref in run.attachments if ref.size > 0 and ref.type != "audio"]
    for utterance in conversation:
        for position, block in enumerate(utterance.content):
            if _source_type(block) != "attachment":
                continue
            index = cast("dict[str, Any]", block)["source"]["index"]
            if not isinstance(index, int) or not 0 <= index < len(with_sources):
                raise attachment_missing(run.session_id, f"number {index}")
            ref = with_sources[index]
            _, data = await sessions.get_attachment(run.session_id, ref.attachment_id)
            source = _source(ref.mime_type, base64.b64encode(data or b"").decode("ascii"))
            utterance.content[position] = cast("ContentBlockParam", {**block, "source": source})
    return conversation


def _source_type(block: ContentBlockParam) -> object:
    source = cast("dict[str, Any]", block).get("source") if block.get("type") in ("image", "document") else None
    return source.get("type") if isinstance(source, dict) else None


def _source(mime_type: str, data: str) -> dict[str, Any]:
    """The source of an image or document block holding an attachment's bytes (`data`: base64)."""
    if mime_type in TEXT_MIME_TYPES:
        return {"type": "text", "media_type": "text/plain", "data": base64.b64decode(data).decode("utf-8")}
    return {"type": "base64", "media_type": mime_type, "data": data}


def _block(index: int, attachment: NewAttachment) -> ContentBlockParam:
    mime_type, data, url = attachment.mime_type, attachment.data, attachment.url
    if attachment.type == "audio" or (data is None and mime_type in TEXT_MIME_TYPES):
        return _note(index, attachment)
    source = _source(mime_type, data) if data is not None else {"type": "url", "url": url}
    if attachment.type == "image":
        return cast("ImageBlockParam", {"type": "image", "source": source})
    document = cast("DocumentBlockParam", {"type": "document", "source": source})
    if attachment.name:
        document["title"] = attachment.name
    return document


def _note(index: int, attachment: NewAttachment) -> TextBlockParam:
    """What the model is told of an attachment it is not given: audio, or a text file at a url."""
    what = f"attachment {index + 1}" + (f" ({attachment.name})" if attachment.name else "")
    if attachment.type == "audio":
        reason = "audio is stored with the run but not sent to the model, which does not take audio"
    else:
        reason = f"a {attachment.mime_type} file at {attachment.url}, stored as its address and not fetched"
    return {"type": "text", "text": f"[The user attached {what}: {reason}.]"}
