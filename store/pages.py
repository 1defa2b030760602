"""Filling a page within RESULT_BUDGET_BYTES as well as within its `limit`.

Items come one at a time from the database, so a page never holds more than the budget (plus the
one item that would have passed it), whatever the limit. A page always holds at least one item,
whole, so paging always moves on and every item can be read: even one whose JSON alone passes the
budget (a 1 MB message of control characters is 6 MB of JSON escapes).
"""

from collections.abc import Callable, Iterable
from typing import TypeVar

from pydantic import BaseModel

from .limits import RESULT_BUDGET_BYTES

Position = TypeVar("Position")
Item = TypeVar("Item", bound=BaseModel)

PAGE_FIELDS_BYTES = 2_000
"""Room kept for the page's own fields (session id, total, next_cursor) around its items."""


def fill_page(
    rows: Iterable[tuple[Position, Item]], limit: int, bound: Callable[[Item], int] | None = None
) -> tuple[list[Item], Position | None]:
    """The items in order up to `limit` and the budget, and the last one's position when more remain.

    `bound` gives a cheap upper bound of an item's JSON size: while the bounds prove the page fits,
    no item is serialized; once they do not, the exact sizes decide.
    """
    items: list[Item] = []
    used = PAGE_FIELDS_BYTES
    last: Position | None = None
    exact = bound is None
    for position, item in rows:
        if len(items) == limit:
            return items, last
        if not exact:
            assert bound is not None
            size = bound(item)
            if used + size > RESULT_BUDGET_BYTES:
                exact = True
                used = PAGE_FIELDS_BYTES + sum(map(_json_size, items))
        if exact:
            size = _json_size(item)
        if items and used + size > RESULT_BUDGET_BYTES:
            return items, last
        items.append(item)
        used += size
        last = position
    return items, None


def _json_size(item: BaseModel) -> int:
    return len(item.__pydantic_serializer__.to_json(item)) + 1  # the item's JSON and its comma
