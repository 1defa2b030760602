"""Attachments on the MCP surface: the `attachments` parameter of `record_run` and `run`, and the resource
`session://{session_id}/attachments/{attachment_id}` that gives an attachment's bytes back.

Tool results name attachments by reference only (store/attachments.py AttachmentRef, its `uri` this
resource's); reading the resource returns the bytes as a blob with the attachment's own mimeType, or, for
one sent as a url, the url as text (`text/uri-list`). The user comes from where the tools take it, so
another user's attachment reads exactly like a missing one.
"""

import base64
from typing import Annotated, Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import ResourceSecurity
from mcp.shared.uri_template import UriTemplate
from mcp.types import BlobResourceContents, ReadResourceRequestParams, ReadResourceResult, TextResourceContents
from pydantic import Field

from mcp_server_sessions.store.attachments import ATTACHMENT_URI, NewAttachment
from mcp_server_sessions.store.limits import (
    MAX_ATTACHMENT_BYTES_PER_RUN,
    MAX_ATTACHMENTS_PER_RUN,
    check_id,
)

from .context import user_sessions
from .resources import protocol_failures

Attachments = Annotated[
    list[NewAttachment] | None,
    Field(
        max_length=MAX_ATTACHMENTS_PER_RUN,
        description=f"Media with the message: at most {MAX_ATTACHMENTS_PER_RUN}, "
        f"{MAX_ATTACHMENT_BYTES_PER_RUN // (1024 * 1024)} MiB of data in all.",
    ),
]
"""The `attachments` parameter of record_run and run."""

URL_LIST = "text/uri-list"
_TEMPLATE = UriTemplate.parse(ATTACHMENT_URI)


def register_attachment_resource(server: MCPServer[Any]) -> None:
    """The template, listed with the others; its reads are answered by `read_attachment`, which gives each
    attachment its own mimeType (a template's reads would all carry one)."""
    server.resource(
        ATTACHMENT_URI,
        name="attachment",
        title="Attachment",
        description="The bytes of an attachment of one of your runs (the uri in get_chat_history's messages).",
        mime_type="application/octet-stream",
        # read_attachment checks both ids' form (check_id); they are ids, not paths.
        security=ResourceSecurity(exempt_params=frozenset({"session_id", "attachment_id"})),
    )(protocol_failures("attachment resource")(attachment_bytes))
    lowlevel = server._lowlevel_server
    entry = lowlevel.get_request_handler("resources/read")
    assert entry is not None  # MCPServer registers it
    others = entry.handler

    async def read(ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams) -> Any:
        found = _TEMPLATE.match(str(params.uri))
        if found is None:
            return await others(ctx, params)
        return await read_attachment(ctx, params.uri, str(found["session_id"]), str(found["attachment_id"]))

    lowlevel.add_request_handler("resources/read", ReadResourceRequestParams, read)


@protocol_failures("attachment resource")
async def read_attachment(
    ctx: ServerRequestContext[Any, Any], uri: str, session_id: str, attachment_id: str
) -> ReadResourceResult:
    ref, data = await _content(Context(request_context=ctx), session_id, attachment_id)
    if data is None:
        return ReadResourceResult(contents=[TextResourceContents(uri=uri, text=ref.url or "", mime_type=URL_LIST)])
    blob = base64.b64encode(data).decode("ascii")
    return ReadResourceResult(contents=[BlobResourceContents(uri=uri, blob=blob, mime_type=ref.mime_type)])


async def attachment_bytes(session_id: str, attachment_id: str, ctx: Context) -> bytes | str:
    """The template's own reader (reached only if the resources/read handler is not ours)."""
    ref, data = await _content(ctx, session_id, attachment_id)
    return data if data is not None else ref.url or ""


async def _content(ctx: Context, session_id: str, attachment_id: str) -> Any:
    check_id(session_id, "session_id")
    check_id(attachment_id, "attachment_id")
    return await user_sessions(ctx, None).get_attachment(session_id, attachment_id)
