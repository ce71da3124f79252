"""The exception hierarchy, and the one place library errors become a one-line message.

Every error the extension raises on purpose derives from `MistralMagicError`; its
message is a single line that names what went wrong and how to fix it. The magic
boundary turns these (and SDK / network errors) into that line via `user_message`.
"""

from __future__ import annotations

import sys


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


class ToolError(MistralMagicError):
    """A ``--tools`` spec that cannot work: an unknown name, no callable, two tools of one name."""


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


class ReplayMiss(MistralMagicError):
    """``MistralMagics.cache = "replay"`` never sends, and no stored answer fits the request."""


class Interrupted(KeyboardInterrupt):
    """The kernel's interrupt stopped the cell, after what arrived was kept and shown.

    A `KeyboardInterrupt` (so no ``except Exception`` carries on past it): the cell ends as
    interrupted and Jupyter drops the cells queued after it. It shows as one line saying what
    was kept; `partial` holds it (the partial `Answer`, the rows done as a DataFrame), or None.
    """

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


_STATUS_HINTS = {
    400: "the request was rejected; check the model's capabilities and your parameters",
    401: "the key was refused; set a valid key with %mistral key or MISTRAL_API_KEY "
    "(a self-hosted server takes MistralMagics.server_key or MISTRAL_SERVER_KEY)",
    403: "this key may not use that model or endpoint",
    404: "not found; list models with %mistral models",
    422: "a parameter is invalid",
    429: "rate limited; wait, raise MistralMagics.max_retries, or lower concurrency",
}
_UNREACHABLE_HINT = (
    "check your network, MistralMagics.server_url, or use MistralMagics.backend = 'offline'"
)


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line (white space folded), cut at `limit` characters with an ellipsis."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _sdk_modules():
    """The SDK's error module and its HTTP library, when loaded (else none of theirs was raised).

    Looked up in `sys.modules` so that sorting an error never imports the SDK.
    """
    return sys.modules.get("mistralai.client.errors"), sys.modules.get("httpx2")


def is_api_error(exc: BaseException) -> bool:
    """Whether `exc` came from the SDK or its transport (an HTTP status, network, protocol)."""
    sdk, http = _sdk_modules()
    return bool(
        (sdk is not None and isinstance(exc, (sdk.MistralError, sdk.NoResponseError)))
        or (http is not None and isinstance(exc, http.HTTPError))
    )


def describe_api_error(
    exc: BaseException, model: str | None = None, hints: dict[int, str] | None = None
) -> str:
    """One line for an SDK or transport error: status, model, and what to do.

    `hints` replaces the generic advice for some statuses (e.g. 404 on a batch job id).
    """
    where = f" (model {model})" if model else ""
    name = type(exc).__name__
    sdk, http = _sdk_modules()
    if sdk is not None and isinstance(exc, sdk.ResponseValidationError):
        return one_line(f"The server sent a response the SDK could not read{where}: {exc}")
    if sdk is not None and isinstance(exc, sdk.MistralError):
        return _status_line(exc, model, hints or {})
    if http is not None and isinstance(
        exc, (http.ConnectError, http.ConnectTimeout, http.UnsupportedProtocol, http.ProxyError)
    ):
        return one_line(
            f"Could not reach the Mistral server{where} ({name}: {exc}); {_UNREACHABLE_HINT}"
        )
    if http is not None and isinstance(exc, http.TimeoutException):
        return one_line(
            f"The request timed out{where}; raise MistralMagics.timeout_s or use a smaller max_tokens"
        )
    if http is not None and isinstance(exc, (http.ProtocolError, http.NetworkError)):
        # Connected, then the connection broke: the server was reached and the answer cut off.
        return one_line(
            f"The server was reached but the answer broke off before it was complete{where} "
            f"({name}: {exc}); run it again, and if it keeps happening check the server or proxy"
        )
    if http is not None and isinstance(exc, http.HTTPError):
        return one_line(f"The request to the Mistral server failed{where} ({name}: {exc})")
    if sdk is not None and isinstance(exc, sdk.NoResponseError):
        return one_line(
            f"The Mistral server sent no response{where} ({exc}); {_UNREACHABLE_HINT}"
        )
    return one_line(f"{name}{where}: {exc}")


def _status_line(exc, model: str | None, hints: dict[int, str]) -> str:
    status = exc.status_code
    detail, kind = _api_error_detail(exc)
    hint = hints.get(status) or _STATUS_HINTS.get(status)
    # An invalid_model message names the model already.
    where = f" (model {model})" if model and not (kind == "invalid_model" and model in detail) else ""
    if kind == "invalid_model":
        hint = "%mistral models lists the models you can use"
    if hint is None and status >= 500:
        hint = "the server failed; retry later or raise MistralMagics.max_retries"
    return one_line(f"Mistral API error {status}{where}: {detail} — {hint or 'see the message'}")


def _api_error_detail(exc) -> tuple[str, str | None]:
    """The error's message from its body, and its `type` when the body gives one."""
    import json

    data = getattr(exc, "data", None)
    detail = getattr(data, "detail", None) if data is not None else None
    if detail:
        parts = []
        for item in detail:
            loc = ".".join(str(p) for p in (getattr(item, "loc", None) or []))
            msg = getattr(item, "msg", "")
            parts.append(f"{loc}: {msg}" if loc else str(msg))
        return "; ".join(parts), None
    body = getattr(exc, "body", None)
    if body:
        try:
            parsed = json.loads(body)
        except (TypeError, ValueError):
            return str(body), None
        if isinstance(parsed, dict):
            kind = parsed.get("type") if isinstance(parsed.get("type"), str) else None
            message = parsed.get("message") or parsed.get("detail") or parsed
            if isinstance(message, list):
                return "; ".join(_detail_item(m) for m in message), kind
            return str(message), kind
    return str(getattr(exc, "message", "") or exc), None


def _detail_item(item) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(p) for p in item.get("loc") or [])
    msg = str(item.get("msg", item))
    return f"{loc}: {msg}" if loc else msg


def user_message(
    exc: BaseException, model: str | None = None, hints: dict[int, str] | None = None
) -> str:
    """The one line shown to the user for any error that reaches the magic boundary."""
    if isinstance(exc, MistralMagicError):
        return one_line(str(exc), limit=500)
    return describe_api_error(exc, model, hints)


def guard(debug: bool, action, hints: dict[int, str] | None = None):
    """Run `action()`; library, SDK and network errors become one line unless `debug` is set.

    This is the magic boundary. `hints` gives the advice for HTTP statuses that mean
    something specific there (e.g. 404 on a batch job id).
    """
    try:
        return action()
    except MistralMagicError as exc:
        if debug and exc.__cause__ is not None:
            raise exc.__cause__ from None
        raise
    except Exception as exc:
        if debug or not is_api_error(exc):
            raise
        raise APIError(user_message(exc, hints=hints), getattr(exc, "status_code", None)) from exc
