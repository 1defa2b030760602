"""A run's attachments as the Messages API takes them: content blocks of the new user message.

Images go as image blocks and PDFs as document blocks (base64, or the url for the API to fetch); text
files (plain, markdown, CSV, JSON) as plain-text documents; a text file sent as a url, and audio, which
the API does not take, as a short note saying what is attached and that it was not sent. The blocks come
before the message's text, as the API advises for images. Only the run's own attachments are sent:
earlier runs come back into context as their stored text, without their media.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from mcp_server_sessions.store.attachments import TEXT_MIME_TYPES, NewAttachment

from .prompt import Utterance

if TYPE_CHECKING:
    from anthropic.types import (
        Base64ImageSourceParam,
        ContentBlockParam,
        DocumentBlockParam,
        ImageBlockParam,
        TextBlockParam,
        URLImageSourceParam,
    )


def content_blocks(attachments: Sequence[NewAttachment]) -> list[ContentBlockParam]:
    """The blocks of attachments already checked by the store's rules (store/attachments.py)."""
    return [_block(index, attachment) for index, attachment in enumerate(attachments)]


def attach(conversation: list[Utterance], attachments: Sequence[NewAttachment]) -> None:
    """The attachments' blocks put before the new message's text (the last block of the last user turn)."""
    if not attachments:
        return
    last = conversation[-1]
    last.content = [*last.content[:-1], *content_blocks(attachments), last.content[-1]]


def _block(index: int, attachment: NewAttachment) -> ContentBlockParam:
    mime_type, data, url = attachment.mime_type, attachment.data, attachment.url
    if attachment.type == "image":
        source: Base64ImageSourceParam | URLImageSourceParam = (
            cast("Base64ImageSourceParam", {"type": "base64", "media_type": mime_type, "data": data})  # an allowed type
            if data is not None
            else {"type": "url", "url": url or ""}
        )
        image: ImageBlockParam = {"type": "image", "source": source}
        return image
    if mime_type == "application/pdf":
        document: DocumentBlockParam = (
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}
            if data is not None
            else {"type": "document", "source": {"type": "url", "url": url or ""}}
        )
        return _titled(document, attachment.name)
    if mime_type in TEXT_MIME_TYPES and data is not None:
        text = base64.b64decode(data).decode("utf-8")
        return _titled(
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}, attachment.name
        )
    return _note(index, attachment)


def _titled(document: DocumentBlockParam, name: str | None) -> DocumentBlockParam:
    if name:
        document["title"] = name
    return document


def _note(index: int, attachment: NewAttachment) -> TextBlockParam:
    """What the model is told of an attachment it is not given: audio, or a text file at a url."""
    what = f"attachment {index + 1}" + (f" ({attachment.name})" if attachment.name else "")
    if attachment.type == "audio":
        reason = "audio is stored with the run but not sent to the model, which does not take audio"
    else:
        reason = f"a {attachment.mime_type} file at {attachment.url}, stored as its address and not fetched"
    return {"type": "text", "text": f"[The user attached {what}: {reason}.]"}
