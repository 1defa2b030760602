"""Access to Claude through the `anthropic` SDK, and its errors mapped onto ours.

Importing the SDK (and building its client) takes about a second, so it never happens at
start-up nor on the event loop: it runs on a worker thread, begun right after start when
credentials are set (`warm_up`), and awaited by the first tool that needs the model. A
`get_session` sent meanwhile is answered as usual.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from anthropic import APIStatusError, AsyncAnthropic

logger = logging.getLogger(__name__)

_CREDENTIAL_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE")


class ModelError(Exception):
    """The model could not be reached or refused the request; the message says what to do."""


class ModelGateway:
    """One AsyncAnthropic client for the server's lifetime, created when first needed."""

    def __init__(self, *, timeout_s: float, max_retries: int) -> None:
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._client: AsyncAnthropic | None = None
        self._creating = anyio.Lock()

    async def client(self) -> AsyncAnthropic:
        if not has_credentials():
            raise ModelError(
                "This tool calls Claude and needs ANTHROPIC_API_KEY in the server's environment; "
                "set it in the client's server configuration and restart the server."
            )
        async with self._creating:
            if self._client is None:
                self._client = await anyio.to_thread.run_sync(self._create)
        return self._client

    async def warm_up(self) -> None:
        """Import the SDK and build the client ahead of the first run, off the event loop."""
        if has_credentials():
            try:
                await self.client()
            except Exception:
                logger.warning("could not prepare the model client; the first run will try again", exc_info=True)

    def _create(self) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(timeout=self._timeout_s, max_retries=self._max_retries)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def has_credentials() -> bool:
    return any(os.environ.get(name) for name in _CREDENTIAL_VARIABLES)


def explain_model_error(exc: Exception) -> ModelError:
    """One clear sentence for an SDK exception (its own text may carry request details)."""
    import anthropic

    logger.warning("model call failed: %r", exc)
    if isinstance(exc, anthropic.APITimeoutError):
        return ModelError("The model did not answer in time (timeout); try again, or raise --model-timeout.")
    if isinstance(exc, anthropic.APIConnectionError):
        return ModelError("The model API could not be reached; check the network or ANTHROPIC_BASE_URL and retry.")
    if isinstance(exc, anthropic.AuthenticationError):
        return ModelError("The model API rejected the credentials; check ANTHROPIC_API_KEY.")
    if isinstance(exc, anthropic.RateLimitError):
        return ModelError("The model API is rate limiting requests (HTTP 429); wait a little and retry.")
    if isinstance(exc, anthropic.NotFoundError):
        return ModelError("The model API does not know this model (HTTP 404); pass another model id.")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status >= 500 or status == 200:  # 200: an error event in the middle of a stream
            return ModelError(f"The model API failed (HTTP {status}, {_error_type(exc)}); retry in a moment.")
        return ModelError(
            f"The model API refused the request (HTTP {status}, {_error_type(exc)}); "
            "check the model, max_tokens and message size."
        )
    return ModelError("The model call failed unexpectedly; the server logged the cause, retry in a moment.")


def _error_type(exc: APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
    return "error"
