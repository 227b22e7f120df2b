"""``X-Arbiter-Arm``: internal testers force an arm, with the API token.

A forced request is served by the named arm whatever the experiment says, is not shadowed, and
is logged with ``forced = true`` so reports and analyses leave it out (it would bias the arm's
sample). Forcing needs a configured token and the request must present it: otherwise anyone
could pick the model that answers them.
"""

from __future__ import annotations

from starlette.requests import Request

from arbiter.errors import InvalidInputError
from arbiter.gateway.middleware.auth import token_matches
from arbiter.gateway.pool import Endpoint
from arbiter.gateway.responses import ForbiddenError, UnauthorizedError

HEADER = "X-Arbiter-Arm"


def forced_arm(request: Request, endpoint: Endpoint, token: str | None) -> str | None:
    """The arm a tester forced, or None; raises when the header is present but not allowed."""
    arm = request.headers.get(HEADER)
    if arm is None:
        return None
    if token is None:
        raise ForbiddenError(
            f"{HEADER} needs an API token configured on the server (ARBITER_API_TOKEN)"
        )
    if not token_matches(request.headers.get("authorization"), token):
        raise UnauthorizedError(f"{HEADER} requires 'Authorization: Bearer <token>'")
    allowed = tuple(endpoint.arms)
    if arm not in allowed:
        raise InvalidInputError(
            f"{HEADER} must be one of {list(allowed)}, got {arm!r}", field=HEADER
        )
    return arm
