"""Request bodies parsed strictly, and validation errors that can always be written.

Python's ``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, turns ``1e400`` into ``inf`` and keeps a
lone surrogate (``"\\ud800"``) as a string that cannot be encoded. FastAPI's own 422 handler echoes each invalid
input back, so such a value in an invalid field made the error handler itself fail (HTTP 500, a reset connection).
Here:

* :class:`StrictJSONRoute` parses bodies with :func:`parse_strict`, which refuses those values as a JSON error
  (422 ``json_invalid`` naming the problem) before any validation;
* :func:`validation_error_response` writes a 422 from the location, message and type of each error only, in ASCII
  JSON, so nothing a client sent can make the reply fail to encode.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute


def parse_strict(body: bytes) -> Any:
    """``body`` as JSON, refusing NaN / Infinity, numbers beyond a float and lone surrogates with a
    ``json.JSONDecodeError`` (position 0 where the parser cannot say)."""
    text = body.decode("utf-8")  # a UnicodeDecodeError is a ValueError: FastAPI answers 400 for it

    def constant(name: str) -> float:
        raise json.JSONDecodeError(f"{name} is not a JSON number", text, 0)

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise json.JSONDecodeError(f"the number {literal[:40]} is beyond a float", text, 0)
        return value

    value = json.loads(text, parse_constant=constant, parse_float=number)
    if _has_lone_surrogate(value):
        raise json.JSONDecodeError("a string holds a lone UTF-16 surrogate (not a character)", text, 0)
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose handler reads the body through :func:`parse_strict`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def strict_handler(request: Request):
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """422 listing, for each error, where (``loc``), what (``msg``) and the rule (``type``), plus the JSON
    decoder's reason for a body that is not valid JSON; never the input itself."""
    detail = []
    for error in exc.errors():
        entry = {"loc": [_safe(part) for part in error.get("loc", ())], "msg": _safe(error.get("msg", "")),
                 "type": _safe(error.get("type", ""))}
        reason = (error.get("ctx") or {}).get("error")
        if error.get("type") == "json_invalid" and reason is not None:
            entry["msg"] = f"invalid JSON: {_safe(reason)}"
        detail.append(entry)
    return JSONResponse({"detail": detail}, status_code=422)


def _safe(value: Any) -> str | int:
    """An int as is; anything else as a string of at most 200 printable ASCII characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else str(value)
    return text.encode("ascii", "backslashreplace").decode("ascii")[:200]
