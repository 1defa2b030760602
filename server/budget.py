"""Fitting a Run into RESULT_BUDGET_BYTES by cutting its longest texts.

Pages already end early at the budget (store/pages.py), and a session always fits it. A Run does
not: it holds up to MAX_RUN_BYTES. Its longest strings, wherever they are in the JSON, are cut to
a common length with a marker saying how much is missing and where to read it whole, until the
whole result fits; if cutting long strings is not enough (a run of many short strings), whole tool
call arguments and results, largest first, give way to a marker. The result keeps its shape and
its output schema.
"""

from typing import Any

from pydantic_core import to_json

from mcp_server_sessions.store.limits import RESULT_BUDGET_BYTES

MARKER = "…[cut: {missing:,} more characters; get_chat_history / get_tool_call_history return it whole]"
WHOLE_MARKER = "…[cut: {size:,} bytes of JSON; get_tool_call_history returns it whole]"
_MARKER_BYTES = len(MARKER.format(missing=10**9).encode())
KEPT_CHARS = 1_000
"""A string is never cut shorter than this: ids, statuses, timestamps and names stay whole."""

Slot = tuple[Any, Any]
"""Where a string sits: its container (a dict or a list) and its key or index there."""


def fit_run(run: dict[str, Any], budget: int = RESULT_BUDGET_BYTES) -> dict[str, Any]:
    """`run` (a Run's structured content), cut if its JSON passes `budget` bytes."""
    size = fit(run, budget)
    if size <= budget:
        return run
    values = [(call, key) for call in run["tool_calls"] for key in ("arguments", "result")]
    values.sort(key=lambda slot: len(to_json(slot[0][slot[1]])), reverse=True)
    for call, key in values:
        cut = len(to_json(call[key]))
        marker = WHOLE_MARKER.format(size=cut)
        call[key] = {"cut": marker} if key == "arguments" else marker
        size -= cut - len(to_json(call[key]))
        if size <= budget:
            break
    return run


def fit(data: dict[str, Any], budget: int = RESULT_BUDGET_BYTES) -> int:
    """Cut the longest strings of `data` (in place) while its JSON passes `budget` bytes; its size after."""
    size = len(to_json(data))
    if size <= budget:
        return size
    slots = _string_slots(data)
    texts = [container[key] for container, key in slots]
    # UTF-8 and JSON escapes make a character cost more than a byte; each string's own average is close enough.
    bytes_per_char = [len(to_json(text)) / max(len(text), 1) for text in texts]
    goal = size - budget + budget // 100  # a little more, so one pass mostly does it
    while (cap := _cut_length(texts, bytes_per_char, goal)) is not None:
        for (container, key), text in zip(slots, texts, strict=True):
            if len(text) > cap:
                container[key] = text[:cap] + MARKER.format(missing=len(text) - cap)
        size = len(to_json(data))
        if size <= budget:
            break
        goal += size - budget
    return size


def _cut_length(texts: list[str], bytes_per_char: list[float], goal: int) -> int | None:
    """The longest length to cut every longer text to that saves `goal` bytes; None if none does."""
    by_length = sorted(zip(map(len, texts), bytes_per_char, strict=True), reverse=True)

    def saved(cap: int) -> float:
        total = 0.0
        for length, per_char in by_length:
            if length <= cap:
                break
            total += per_char * (length - cap) - _MARKER_BYTES
        return total

    if saved(KEPT_CHARS) < goal:
        return None  # only long strings are ever cut, and cutting them all is not enough
    low, high = KEPT_CHARS, by_length[0][0]  # saved(low) >= goal > saved(high) == 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if saved(middle) >= goal else (low, middle)
    return low


def _string_slots(value: Any) -> list[Slot]:
    slots: list[Slot] = []
    stack = [value]
    while stack:
        container = stack.pop()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in items:
            if isinstance(item, str):
                slots.append((container, key))
            elif isinstance(item, dict | list):
                stack.append(item)
    return slots
