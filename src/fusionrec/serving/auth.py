"""API-key checks for the service: constant-time comparison, the key never logged or echoed."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def presented_key(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key")


def check_key(request: Request, expected: str | None) -> None:
    """Raises 401 unless the request carries ``expected`` (no check when ``expected`` is None)."""
    if expected is None:
        return
    given = presented_key(request)
    if given is None:
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"})
