"""API-key checks for the service: constant-time comparison, the key never logged or echoed."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import HTTPException, Request


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """Every key the request headers carry: ``Authorization: Bearer KEY`` and ``X-API-Key: KEY``. An Authorization
    header of another scheme, or a Bearer without a value, counts as a key (a wrong one), so that it cannot be
    ignored in favour of the other header."""
    keys = []
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        keys.append(value.strip() if scheme.lower() == "bearer" else auth)
    api_key = headers.get("x-api-key")
    if api_key is not None:
        keys.append(api_key)
    return keys


def key_matches(headers: Mapping[str, str], expected: str | None) -> bool:
    """True when no key is expected, or when the headers carry at least one key and every key they carry is
    ``expected`` (each compared in constant time): a wrong X-API-Key beside a right Bearer token fails."""
    if expected is None:
        return True
    given = presented_keys(headers)
    want = expected.encode()
    return bool(given) and all([hmac.compare_digest(key.encode(), want) for key in given])


def check_key(request: Request, expected: str | None) -> None:
    """Raises 401 unless the request carries ``expected`` (no check when ``expected`` is None)."""
    if key_matches(request.headers, expected):
        return
    if not presented_keys(request.headers):
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                            headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"})
