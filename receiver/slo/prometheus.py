"""SLI values from Prometheus: one instant query (`/api/v1/query`) at the window's end.

Keptn's rules, kept: an empty result is 0 (an error-rate query has no series while there
are no errors); an HTTP error or NaN is no value, and the objective fails. Beyond Keptn:
several series are no value either (Keptn silently took the first), and so is ±Inf
(a quantile above the largest histogram bucket); the reason says which.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import aiohttp

from receiver.errors import SliError
from receiver.settings import Secret
from receiver.slo import fetch

_BODY_EXCERPT = 200  # characters of a foreign error body worth showing


class Prometheus:
    name = "prometheus"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        token: Secret | None = None,
        basic_username: str | None = None,
        basic_password: Secret | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._headers: dict[str, str] = {}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token.reveal()}"
        elif basic_username and basic_password is not None:
            # Written out: aiohttp.BasicAuth is deprecated (a warning on every start).
            pair = f"{basic_username}:{basic_password.reveal()}".encode()
            self._headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"

    @staticmethod
    def escape(value: str) -> str:
        return value  # the query travels as one form field: nothing to escape inside it

    async def value(self, query: str, *, start: float, end: float) -> float:
        del start  # an instant query at `end`; the window is inside the query's [$DURATION_SECONDS]
        params = {"query": query, "time": f"{end:.3f}"}
        status, text = await fetch.get(
            self._session,
            f"{self._url}/api/v1/query",
            params=params,
            headers=self._headers,
            give_up_after=self._timeout,
            system="Prometheus",
        )
        return _value(status, text)


def _value(status: int, text: str) -> float:
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error") if isinstance(body, dict) else None
        raise SliError(
            f"Prometheus answered {status}: {detail or text[:_BODY_EXCERPT].strip() or 'no body'}"
        )
    data = body.get("data") or {}
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        raw = result[1] if isinstance(result, list) and len(result) == 2 else None
    elif result_type == "vector" and isinstance(result, list):
        if not result:
            return 0.0  # Keptn: no series (no errors at all) counts as 0
        if len(result) > 1:
            raise SliError(
                f"the query returned {len(result)} series, expected one: aggregate it,"
                " for example with sum(...)"
            )
        raw = (result[0].get("value") or [None, None])[1]
    else:
        raise SliError(f"expected an instant vector or scalar, got {result_type!r}")
    try:
        number = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SliError(f"Prometheus returned a value that is not a number: {raw!r}") from None
    if math.isnan(number):
        raise SliError("the value is NaN (no data in the window?)")
    if math.isinf(number):
        raise SliError(f"the value is {raw} (above the largest histogram bucket?)")
    return number
