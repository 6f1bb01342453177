"""What an action refuses, in the platform's words rather than HTTP's.

Actions (and the modules they call) raise these; each caller turns them into its own answer in one place:
the API in `softserve.api.errors` (a status, the error body, Retry-After), the web pages in `webui.forms`
(messages beside the fields). An error carries what both need: a stable `code`, a sentence, the fields it
concerns, extra figures for the body (a gate's verdict) and, where a retry helps, how long to wait.

Serializers are the HTTP layer and keep raising DRF's ValidationError.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A refusal the caller can act on. Subclasses set the default `code` and `message`."""

    code: ClassVar[str] = "error"
    message: ClassVar[str] = "The request was refused."
    retry_after: ClassVar[int | None] = None  # seconds a retry should wait, when one may help

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        text = message if message is not None else type(self).message
        super().__init__(text)
        self.text = text
        # Instance attributes shadow the class defaults only when given.
        if code is not None:
            self.code = code  # type: ignore[misc]
        if retry_after is not None:
            self.retry_after = retry_after  # type: ignore[misc]
        self.fields: dict[str, list[str]] = fields or {}
        self.extra: dict[str, Any] = extra or {}

    def __str__(self) -> str:
        return self.text


class NotFound(DomainError):
    """The object does not exist for this team (another team's object is not found either)."""

    code = "not_found"
    message = "Not found."


class Forbidden(DomainError):
    """The actor may not do this (role, protection, a storage quota)."""

    code = "permission_denied"
    message = "You do not have permission to perform this action."


class Invalid(DomainError):
    """The input cannot be used; `fields` says which and why ({field: [messages]})."""

    code = "invalid"
    message = "The request is invalid."

    def __init__(self, fields: dict[str, list[str]] | None = None, message: str | None = None) -> None:
        super().__init__(message, fields=fields)

    def __str__(self) -> str:
        """The sentence and each field's messages (for logs and tracebacks; pages and the API use `text`
        and `fields`)."""
        said = "; ".join(f"{name}: {' '.join(map(str, msgs))}" for name, msgs in self.fields.items())
        return f"{self.text} {said}" if said else self.text


class Conflict(DomainError):
    """The object's state forbids it now (a version not ready, a gate that refuses): `code` says which."""

    code = "conflict"
    message = "The object's state does not allow this."


class QuotaExceeded(DomainError):
    """The team is over a quota or its share; `retry_after` when waiting helps."""

    code = "throttled"
    message = "Request was throttled."


class TooLarge(DomainError):
    """Over a size limit: bytes, rows or line length."""

    code = "too_large"
    message = "The request is over a size limit."


class Unavailable(DomainError):
    """A service the action needs is full or unreachable; retry after `retry_after` seconds."""

    code = "unavailable"
    message = "Briefly unavailable; retry shortly."


class UpstreamFailed(DomainError):
    """A service the action needs answered with a failure (the serving pool)."""

    code = "upstream_failed"
    message = "A service this request needs failed."


class TimedOut(DomainError):
    """No answer within the deadline."""

    code = "deadline_exceeded"
    message = "No answer within the deadline."
