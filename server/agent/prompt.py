"""What the model sees in a run: system prompt, summary, state, recent runs, the new message.

History is cut at run boundaries, and only completed runs come back, so a `tool_use` always
travels with its `tool_result`. Two cache breakpoints: the end of the base system prompt (tools
and instructions, stable across turns) and the last message (so every further model call of the
tool loop, and the next turn while the history window still holds this one, re-reads the
prefix from Anthropic's prompt cache).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from mcp_server_sessions.store import ContextMessage, Session

if TYPE_CHECKING:
    from anthropic.types import (
        CacheControlEphemeralParam,
        ContentBlock,
        ContentBlockParam,
        MessageParam,
        TextBlockParam,
    )

DEFAULT_SYSTEM = (
    "You are a helpful assistant in a persistent conversation session. Earlier turns of this "
    "session may appear below. You have tools to read this session's older history and tool "
    "calls, to search the user's previous sessions, and to update this session's state; use them "
    "when they help, and answer directly otherwise."
)
_CACHE: CacheControlEphemeralParam = {"type": "ephemeral"}


@dataclass
class Utterance:
    """One message of a run's conversation; `request_messages` turns them into the SDK's messages."""

    role: Literal["user", "assistant"]
    content: list[ContentBlockParam]


def system_blocks(session: Session, system: str | None) -> list[TextBlockParam]:
    prompt = system or (session.agent.system if session.agent and session.agent.system else None) or DEFAULT_SYSTEM
    blocks: list[TextBlockParam] = [{"type": "text", "text": prompt}]
    if session.summary is not None:
        blocks.append(
            {
                "type": "text",
                "text": f"Summary of this session's earlier conversation:\n{session.summary.summary}",
            }
        )
    if session.state:
        state = json.dumps(session.state, ensure_ascii=False, sort_keys=True)
        blocks.append({"type": "text", "text": f"Current session state (JSON):\n{state}"})
    blocks[0]["cache_control"] = _CACHE  # the stable part; summary and state change between turns
    return blocks


def history_messages(stored: list[ContextMessage]) -> list[Utterance]:
    """Stored messages as a valid Messages API conversation.

    Consecutive turns of one role are joined; empty text blocks are dropped (an empty turn says
    "(empty)"), and a tool_use without its tool_result right after it, or a tool_result without
    its tool_use right before it, is left out, so one odd stored run can never make every later
    request of the session invalid.
    """
    turns: list[Utterance] = []
    for message in stored:
        role: Literal["user", "assistant"] = "assistant" if message.role == "assistant" else "user"
        content: list[ContentBlockParam]
        if message.blocks is not None:
            # stored by a turn from the blocks it sent: the SDK's block params as JSON
            content = [cast("ContentBlockParam", dict(block)) for block in message.blocks]
        elif message.role == "tool":
            continue  # a client-recorded tool call: its text is not a turn the model took
        else:
            content = [{"type": "text", "text": message.content}]
        content = [block for block in content if block.get("type") != "text" or block.get("text")]
        if turns and turns[-1].role == role:
            turns[-1].content.extend(content)
        else:
            turns.append(Utterance(role, content))
    _pair_tool_blocks(turns)
    for turn in turns:
        if not turn.content:
            turn.content = [{"type": "text", "text": "(empty)"}]
    while turns and turns[0].role != "user":
        turns.pop(0)
    return turns


def _pair_tool_blocks(turns: list[Utterance]) -> None:
    for index, turn in enumerate(turns):
        if turn.role == "assistant":
            following = turns[index + 1].content if index + 1 < len(turns) else []
            answered = {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"}
            turn.content = [b for b in turn.content if b.get("type") != "tool_use" or b.get("id") in answered]
        else:
            preceding = turns[index - 1].content if index > 0 else []
            asked = {b.get("id") for b in preceding if b.get("type") == "tool_use"}
            turn.content = [b for b in turn.content if b.get("type") != "tool_result" or b.get("tool_use_id") in asked]


def with_new_message(history: list[Utterance], message: str) -> list[Utterance]:
    new: TextBlockParam = {"type": "text", "text": message}
    if history and history[-1].role == "user":
        return [*history[:-1], Utterance("user", [*history[-1].content, new])]
    return [*history, Utterance("user", [new])]


def request_messages(conversation: list[Utterance]) -> list[MessageParam]:
    """The conversation as the SDK's messages, with one cache breakpoint: on the last block of the last message."""
    messages: list[MessageParam] = []
    for number, utterance in enumerate(conversation, start=1):
        last = len(utterance.content) if number == len(conversation) else 0
        content = [_cache_point(block, index == last) for index, block in enumerate(utterance.content, start=1)]
        if utterance.role == "user":
            messages.append({"role": "user", "content": content})
        else:
            messages.append({"role": "assistant", "content": content})
    return messages


def _cache_point(block: ContentBlockParam, marked: bool) -> ContentBlockParam:
    """A copy of `block` whose cache breakpoint is `_CACHE` when `marked`, else none."""
    copy = {key: value for key, value in block.items() if key != "cache_control"}
    if marked:
        copy["cache_control"] = _CACHE
    return cast("ContentBlockParam", copy)  # the same block with its cache_control key set or dropped


def stored_block(block: ContentBlock) -> ContentBlockParam:
    """A response content block reduced to what a later request may send back."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return cast("ContentBlockParam", block.model_dump(exclude_none=True))  # any other block goes back as it came
