"""Which SLI provider answers for a service, built from settings."""

from __future__ import annotations

from typing import Protocol

import aiohttp

from receiver.errors import SliError
from receiver.settings import Settings
from receiver.slo.dynatrace import Dynatrace
from receiver.slo.prometheus import Prometheus

NAMES = ("prometheus", "dynatrace")


class Provider(Protocol):
    name: str

    def escape(self, value: str) -> str:
        """How a placeholder's value is written into this provider's queries."""
        ...

    async def value(self, query: str, *, start: float, end: float) -> float:
        """The SLI's value over [start, end] (unix seconds); raises SliError."""
        ...


class _Unconfigured:
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self._reason = reason

    def escape(self, value: str) -> str:
        return value

    async def value(self, query: str, *, start: float, end: float) -> float:
        raise SliError(self._reason)


def create(name: str, session: aiohttp.ClientSession, settings: Settings) -> Provider:
    if name == "prometheus":
        return Prometheus(
            session,
            settings.prometheus_url,
            token=settings.prometheus_token,
            basic_username=settings.prometheus_basic_username,
            basic_password=settings.prometheus_basic_password,
            timeout=settings.sli_timeout,
        )
    if name == "dynatrace":
        if not settings.dynatrace_url:
            return _Unconfigured(name, "Dynatrace is not configured: set RECEIVER_DYNATRACE_URL")
        return Dynatrace(
            session,
            settings.dynatrace_url,
            token=settings.dynatrace_token,
            timeout=settings.sli_timeout,
        )
    return _Unconfigured(name, f"unknown SLI provider {name!r}")
