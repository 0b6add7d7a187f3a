"""API-key checks for the service: constant-time comparison, the key never logged or echoed."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import HTTPException, Request


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key request headers carry: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key")


def key_matches(headers: Mapping[str, str], expected: str | None) -> bool:
    """True when no key is expected or the headers carry ``expected`` (compared in constant time)."""
    if expected is None:
        return True
    given = presented_key(headers)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_key(request: Request, expected: str | None) -> None:
    """Raises 401 unless the request carries ``expected`` (no check when ``expected`` is None)."""
    if key_matches(request.headers, expected):
        return
    if presented_key(request.headers) is None:
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                            headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"})
