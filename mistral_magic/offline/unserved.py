"""The API's paths that the offline server does not emulate: a clear answer instead of a bare 404.

`spec_paths.txt` lists the operations of Mistral's OpenAPI spec that the server does
not route, and the SDK's Azure/GCP paths. A request that matches one of them gets a
404 in the API's error shape saying the feature is not available offline, and which
`%mistral` feature covers it, if any (the observability API answers in its own
documented error shape). A path in no spec stays FastAPI's plain
`{"detail": "Not Found"}`, as on the hosted API.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from .wire import error_body

# Longest prefix first: (path prefix, what it is, the %mistral feature that covers it or None).
_FAMILIES = (
    ("/v1/agents/completions", "the deprecated agents completions",
     "%%mistral --agent NAME asks an agent through the Conversations API, which is served"),
    ("/v1/agents", "agents", None),
    ("/v1/audio", "audio: transcription, speech and voices", None),
    ("/v1/libraries", "sharing document libraries", None),
    ("/v1/fine_tuning", "fine-tuning jobs", "%mistral models --mine lists the fine-tuned models"),
    ("/v1/models/", "deleting fine-tuned models",
     "%mistral models --mine lists the fine-tuned models, and %mistral models archive ID puts one away"),
    ("/v1/observability", "observability", None),
    ("/v1/connectors", "connectors", None),
    ("/v1/workflows", "workflows", None),
    ("/v1/rag", "search indexes", None),
    ("/v1/users", "account details", None),
    ("/v1/admin", "administration", None),
    ("/v2/prompts", "prompt management", None),
    ("/v2/skills", "skills", None),
    ("/v1/projects/", "the Google Cloud Vertex AI form of the API",
     "point the SDK at the offline server with Mistral(server_url=...), which uses La Plateforme's /v1 paths"),
    ("/rawPredict", "the Google Cloud Vertex AI form of the API",
     "point the SDK at the offline server with Mistral(server_url=...), which uses La Plateforme's /v1 paths"),
    ("/streamRawPredict", "the Google Cloud Vertex AI form of the API",
     "point the SDK at the offline server with Mistral(server_url=...), which uses La Plateforme's /v1 paths"),
    ("/models/", "the Azure form of the API",
     "point the SDK at the offline server with Mistral(server_url=...), which uses La Plateforme's /v1 paths"),
    ("/providers/", "the Azure form of the API",
     "point the SDK at the offline server with Mistral(server_url=...), which uses La Plateforme's /v1 paths"),
)


@functools.cache
def _operations() -> tuple[tuple[str, re.Pattern, str], ...]:
    """(method, compiled path, template) for every operation in spec_paths.txt."""
    text = resources.files(__package__).joinpath("spec_paths.txt").read_text(encoding="utf-8")
    found = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        method, template = line.split(" ", 1)
        pattern = "".join(r"[^/]+" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}]+\})", template))
        found.append((method, re.compile(pattern + r"\Z"), template))
    return tuple(found)


def find(method: str, path: str) -> str | None:
    """The spec's template for this operation, or None when no spec has it."""
    for spec_method, pattern, template in _operations():
        if spec_method == method and pattern.match(path):
            return template
    return None


def answer(method: str, path: str) -> tuple[int, dict] | None:
    """The 404 status and body for an operation of the spec not served offline, or None."""
    template = find(method, path)
    if template is None:
        return None
    what, hint = next(((w, h) for prefix, w, h in _FAMILIES if template.startswith(prefix)),
                      ("not emulated", None))
    message = f"{method} {template} is not available offline ({what})"
    message += f"; {hint}." if hint else "; no %mistral feature uses it."
    if template.startswith("/v1/observability"):
        return 404, {"detail": {"message": message, "error_code": "FEATURE_NOT_SUPPORTED"}}
    return 404, error_body(message, "not_available_offline")
