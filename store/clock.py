from datetime import UTC, datetime


def utc_now() -> str:
    """ISO 8601 UTC with microseconds and a Z, so that text order is time order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
