"""Every exception the receiver raises on purpose, in one tree.

    ReceiverError
    ├── ConfigError            a configuration file or setting is wrong (file + path inside it)
    │   └── ConfigRefused      a configuration directory with problems, every one of them
    ├── PayloadError           a webhook body cannot be used (names the offending field)
    ├── AuthError              missing or wrong credentials
    ├── Overloaded             the event loop runs late: shed the request, the sender retries
    ├── SliError               an SLI could not be retrieved: its objective fails, with the reason
    ├── ActionError            a remediation action did not do its job
    │   ├── PermanentActionError   retrying cannot help (403, 404, bad token): the chain moves on
    │   └── TemporaryActionError   worth retrying after `delay` (5xx, timeout, 409 conflict)
    └── JournalError           the journal cannot take the write now
        ├── JournalOverloaded  too many writes queued: shed load, the sender retries
        └── JournalUnavailable the database refused the write (locked, full, closed)

Foreign exceptions (sqlite3, json, yaml) are translated into these once, where they arise,
so that the HTTP layer maps types, not messages, to status codes.
"""

from __future__ import annotations


class ReceiverError(Exception):
    """Base of every error the receiver raises on purpose."""


class ConfigError(ReceiverError):
    """A configuration problem, located by file and by path inside the file."""

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file = file
        self.path = path
        self.message = message
        super().__init__(f"{file}: {path}: {message}" if path else f"{file}: {message}")


class ConfigRefused(ConfigError):
    """A configuration directory that cannot be used, with every problem found in it."""

    def __init__(self, root: str, problems: tuple[ConfigError, ...]) -> None:
        lines = "".join(f"\n  {problem}" for problem in problems)
        super().__init__(root, "", f"{len(problems)} problem(s):{lines}")
        self.problems = problems


class PayloadError(ReceiverError):
    """A webhook body that cannot be used; `field` says where, as `alerts[2].status`."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class AuthError(ReceiverError):
    """Missing or wrong credentials. Never carries the credentials themselves."""


class Overloaded(ReceiverError):
    """Too busy to take this request now (the event loop runs late); retry shortly."""


class SliError(ReceiverError):
    """An SLI could not be retrieved (provider down, query rejected, no single value)."""


class ActionError(ReceiverError):
    """A remediation action did not do its job; the message says what and why."""


class PermanentActionError(ActionError):
    """Retrying cannot help: missing permission, unknown target, wrong token, no effect."""


class TemporaryActionError(ActionError):
    """Worth another try: a 5xx, a timeout, a conflicting write. `delay`: after exactly that
    many seconds (0 for a conflict to re-read at once, a server's Retry-After); None: after
    the exponential backoff."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class JournalError(ReceiverError):
    """The journal cannot take this write now; the sender should retry later."""


class JournalOverloaded(JournalError):
    """More writes are queued than the journal is allowed to hold."""


class JournalUnavailable(JournalError):
    """The database refused the write (locked, disk full, unreachable, closed)."""


class JournalFenced(JournalError):
    """The engine's write came from a process that no longer leads: another took over."""
