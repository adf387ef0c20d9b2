"""SLI values from the Dynatrace metrics API v2 (`/api/v2/metrics/query`), as Keptn read them.

An indicator in sli.yaml is either the current form, query parameters
(`metricSelector=builtin:service.response.time:merge(0):percentile(90)&entitySelector=…`),
or Keptn's older `metric?scope=…` form. The window is sent as `from`/`to` with
`resolution=Inf`, so exactly one data point is expected. Response times
(`builtin:service.response.time`) come in microseconds and are converted to milliseconds,
as Keptn did — unless the selector converts them itself with `:toUnit(...)`.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any

import aiohttp

from receiver.errors import SliError
from receiver.settings import Secret
from receiver.slo import fetch

_BODY_EXCERPT = 200
logger = logging.getLogger(__name__)

_MICROSECONDS = "builtin:service.response.time"
_TO_UNIT = ":toUnit("  # the selector converts the unit itself: take the value as it comes


class Dynatrace:
    name = "dynatrace"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        token: Secret | None,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._headers = {"Authorization": f"Api-Token {token.reveal()}"} if token else {}

    @staticmethod
    def escape(value: str) -> str:
        """How a placeholder's value is written into the query (it is read back by split)."""
        return urllib.parse.quote(value, safe="")

    async def value(self, query: str, *, start: float, end: float) -> float:
        params = split(query)
        if uses_scope(query) and query not in _WARNED:
            _WARNED.add(query)  # once per query and process, not at every evaluation
            logger.warning(
                "sli.dynatrace_scope",
                extra={
                    "detail": "Keptn 0.6's ?scope= is sent as entitySelector (metrics API v2);"
                    " write metricSelector=...&entitySelector=... in sli.yaml",
                    "entitySelector": params.get("entitySelector"),
                },
            )
        if "metricSelector" not in params:
            raise SliError(f"the query has no metricSelector: {query[:_BODY_EXCERPT]}")
        params |= {"from": str(int(start * 1000)), "to": str(int(end * 1000)), "resolution": "Inf"}
        status, text = await fetch.get(
            self._session,
            f"{self._url}/api/v2/metrics/query",
            params=params,
            headers=self._headers,
            give_up_after=self._timeout,
            system="Dynatrace",
        )
        number = _value(status, text)
        selector = params["metricSelector"]
        if _MICROSECONDS in selector and _TO_UNIT not in selector:
            return number / 1000.0  # Dynatrace answers in µs unless the selector converts
        return number


_WARNED: set[str] = set()


def uses_scope(query: str) -> bool:
    """Keptn 0.6's `metric?scope=...` form, which the metrics API v2 does not know."""
    return "?scope=" in query or "&scope=" in query


def split(query: str) -> dict[str, str]:
    """Query parameters of an indicator, in the current or Keptn's older form.

    Values are percent-decoded but `+` stays `+`: metric selectors are not form data.
    """
    query = query.strip()
    if query.startswith("?metricSelector="):
        query = query[1:]
    if not query.startswith("metricSelector=") and "&metricSelector=" not in query:
        selector, _, rest = query.partition("?")  # the older "metric?scope=..." form
        query = f"metricSelector={selector}" + (f"&{rest}" if rest else "")
    params: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name:
            params[urllib.parse.unquote(name)] = urllib.parse.unquote(value)
    scope = params.pop("scope", None)
    if scope is not None and "entitySelector" not in params:
        # Keptn 0.6's `?scope=tag(...)`: the metrics API v2 has no `scope`; Keptn's
        # dynatrace-sli-service sent it as the entity selector, of services by default.
        params["entitySelector"] = scope if "type(" in scope else f"{scope},type(SERVICE)"
    return params


def _value(status: int, text: str) -> float:
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise SliError(
            f"Dynatrace answered {status}: {message or text[:_BODY_EXCERPT].strip() or 'no body'}"
        )
    results = body.get("result") if isinstance(body, dict) else None
    if not isinstance(results, list) or not results:
        raise SliError("Dynatrace returned no metric result")
    data = results[0].get("data") if isinstance(results[0], dict) else None
    if not isinstance(data, list) or len(data) != 1:
        count = len(data) if isinstance(data, list) else 0
        raise SliError(
            f"Dynatrace returned {count} series, expected one: merge the dimensions,"
            " for example with :merge(0)"
        )
    values = data[0].get("values") if isinstance(data[0], dict) else None
    if not isinstance(values, list) or len(values) != 1 or values[0] is None:
        raise SliError(f"Dynatrace returned {values!r}, expected exactly one data point")
    value = values[0]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SliError(f"Dynatrace returned a value that is not a number: {value!r}")
    return float(value)
