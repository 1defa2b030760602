"""The user a verified bearer token acts for, as the SDK's auth middleware hands it to a tool."""

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken


class UserAccessToken(AccessToken):
    """An access token that names the sessions user it acts for (a token file's line, a JWT's claim)."""

    user_id: str


def token_user() -> str | None:
    """The user of the current request's verified token, or None when the request carried none."""
    token = get_access_token()
    return token.user_id if isinstance(token, UserAccessToken) else None
