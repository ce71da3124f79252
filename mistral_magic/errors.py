"""The exception hierarchy, and the one place library errors become a one-line message.

Every error the extension raises on purpose derives from `MistralMagicError`; its
message is a single line that names what went wrong and how to fix it. The magic
boundary turns these (and SDK / network errors) into that line via `user_message`.
"""

from __future__ import annotations


class MistralMagicError(Exception):
    """Base class: the message is one line that says what to do."""

    def _render_traceback_(self) -> list[str]:
        # IPython's showtraceback() shows this instead of a traceback.
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class ConfigError(MistralMagicError):
    """A setting or argument that cannot work (unknown backend, bad server_url, ...)."""


class PromptError(MistralMagicError):
    """The prompt could not be built (unknown {name}, bad expression)."""


class BudgetExceeded(MistralMagicError):
    """A call was refused before sending because it could pass `budget_usd`."""


class SchemaError(MistralMagicError):
    """A --schema SPEC that cannot be turned into a JSON Schema."""


class StructuredOutputError(MistralMagicError):
    """The model's answer did not parse or validate; the raw text is kept."""

    def __init__(self, message: str, raw: str | None = None):
        super().__init__(message)
        self.raw = raw


class APIError(MistralMagicError):
    """A request to the backend failed (after retries)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Interrupted(MistralMagicError):
    """The kernel's interrupt stopped a request; what finished is kept."""


_STATUS_HINTS = {
    400: "the request was rejected; check the model's capabilities and your parameters",
    401: "the API key was refused; set a valid key with %mistral key or MISTRAL_API_KEY",
    403: "this key may not use that model or endpoint",
    404: "not found; list models with %mistral models",
    422: "a parameter is invalid",
    429: "rate limited; wait, raise MistralMagics.max_retries, or lower concurrency",
}


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_api_error(exc: BaseException, model: str | None = None) -> str:
    """One line for an SDK or transport error: status, model, and what to do."""
    status = getattr(exc, "status_code", None)
    where = f" (model {model})" if model else ""
    name = type(exc).__name__
    if status is not None:
        detail = _api_error_detail(exc)
        hint = _STATUS_HINTS.get(status)
        if "invalid_model" in str(getattr(exc, "body", "")) or "Invalid model" in detail:
            hint = "list the models you can use with %mistral models"
        if hint is None and status >= 500:
            hint = "the server failed; retry later or raise MistralMagics.max_retries"
        return _first_line(f"Mistral API error {status}{where}: {detail} — {hint or 'see the message'}")
    if "Timeout" in name:
        return _first_line(
            f"The request timed out{where}; raise MistralMagics.timeout_s or use a smaller max_tokens"
        )
    if "Connect" in name or "Network" in name or "RemoteProtocol" in name:
        return _first_line(
            f"Could not reach the Mistral server{where} ({name}: {exc}); check your network, "
            "MistralMagics.server_url, or use MistralMagics.backend = 'offline'"
        )
    if name == "ResponseValidationError":
        return _first_line(f"The server sent a response the SDK could not read{where}: {exc}")
    return _first_line(f"{name}{where}: {exc}")


def _api_error_detail(exc: BaseException) -> str:
    import json

    body = getattr(exc, "body", None)
    data = getattr(exc, "data", None)
    detail = getattr(data, "detail", None) if data is not None else None
    if detail:
        parts = []
        for item in detail:
            loc = ".".join(str(p) for p in (getattr(item, "loc", None) or []))
            msg = getattr(item, "msg", "")
            parts.append(f"{loc}: {msg}" if loc else str(msg))
        return "; ".join(parts)
    if body:
        try:
            parsed = json.loads(body)
        except (TypeError, ValueError):
            return str(body)
        if isinstance(parsed, dict):
            message = parsed.get("message") or parsed.get("detail") or parsed
            if isinstance(message, list):
                return "; ".join(str(m.get("msg", m)) if isinstance(m, dict) else str(m) for m in message)
            return str(message)
    return str(getattr(exc, "message", "") or exc)


def user_message(exc: BaseException, model: str | None = None) -> str:
    """The one line shown to the user for any error that reaches the magic boundary."""
    if isinstance(exc, MistralMagicError):
        return _first_line(str(exc), limit=500)
    return describe_api_error(exc, model)

