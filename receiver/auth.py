"""Webhook and write-endpoint authentication: a bearer token and/or basic auth.

Alertmanager's `http_config` can send either (`authorization.credentials` or `basic_auth`),
and a Dynatrace custom webhook can set an `Authorization` header. Every comparison runs in
constant time, and no credential is ever put in an error or a log line.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac

from receiver.errors import AuthError
from receiver.settings import Secret, Settings


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Credentials:
    token: Secret | None
    basic_username: str | None
    basic_password: Secret | None
    disabled: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        return cls(
            token=settings.auth_token,
            basic_username=settings.auth_basic_username,
            basic_password=settings.auth_basic_password,
            disabled=settings.auth_disabled,
        )

    @property
    def configured(self) -> bool:
        return self.token is not None or self.basic_password is not None

    @property
    def challenge(self) -> str:
        schemes = []
        if self.token is not None:
            schemes.append('Bearer realm="selfheal-receiver"')
        if self.basic_password is not None:
            schemes.append('Basic realm="selfheal-receiver"')
        return ", ".join(schemes) or 'Bearer realm="selfheal-receiver"'

    def verify(self, authorization: str | None) -> None:
        """Return if `authorization` (the header's value) is acceptable, else raise AuthError."""
        if self.disabled:
            return
        if not authorization:
            raise AuthError("missing Authorization header")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token is not None:
            if _same(value, self.token.reveal()):
                return
            raise AuthError("wrong bearer token")
        if scheme.lower() == "basic" and self.basic_password is not None:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 inside
                raise AuthError("malformed basic credentials") from None
            username, _, password = decoded.partition(":")
            # Both compared, always: an early exit would tell which half was wrong by timing.
            user_ok = _same(username, self.basic_username or "")
            password_ok = _same(password, self.basic_password.reveal())
            if user_ok and password_ok:
                return
            raise AuthError("wrong basic credentials")
        # Not quoted: a token sent without its scheme would be echoed to whoever sent it.
        raise AuthError("unsupported authorization scheme: expected Bearer or Basic")


class Connection:
    """What a connection of the listener carries for the HTTP layer to mark: whether one of
    its requests carried valid credentials. Until one has, the listener lets it go as soon as
    it has been open for server.unauthenticated_timeout and is idle, so that connections
    nobody vouched for cannot hold the slots webhooks need."""

    authenticated = False


def _same(given: str, expected: str) -> bool:
    # surrogatepass: a header byte that is not UTF-8 arrives as a lone surrogate; it must
    # compare unequal, not raise.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
