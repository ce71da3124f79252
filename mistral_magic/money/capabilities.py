"""What each model can do, from the backend's own model cards: checked before a picture is sent.

`Capabilities(session).require(model, "vision")` raises a one-line `ConfigError` naming
models that can, when the backend's ``models.list`` says `model` cannot. The cards are
listed once per backend and kept for the session. Where they cannot be had (replaying,
which never reaches a server; a listing that fails; a model not listed, e.g. on a
self-hosted server) nothing is refused here, and the server's own answer stands.
"""

from __future__ import annotations

import threading
import weakref

from ..errors import ConfigError

SHOWN = 6  # models named in a refusal
DOING = {"vision": "see images", "ocr": "read documents with OCR"}


class Capabilities:
    """Model cards of the session's backend: `of(model)`, `able(capability)`, `require`."""

    def __init__(self, session):
        # A proxy: the session keeps this object, which must not keep the session alive (a
        # cycle would leave its SDK client to be closed by a later, random garbage collection).
        self.session = weakref.proxy(session)
        self._cards: dict[str, list[tuple[str, frozenset[str], bool]]] = {}
        self._lock = threading.Lock()

    def _listing(self) -> list[tuple[str, frozenset[str], bool]] | None:
        """(id or alias, capabilities, deprecated) of every listed name; None when unknown."""
        session = self.session
        if session.responses.mode == "replay":
            return None
        backend = session.backend
        key = backend.url or backend.kind
        with self._lock:
            if key in self._cards:
                return self._cards[key]
        try:
            cards = backend.client.models.list().data or []
        except Exception:  # no listing (network, a server without /v1/models): no check here
            return None
        found = []
        for card in cards:
            capabilities = getattr(card, "capabilities", None)
            caps = frozenset() if capabilities is None else frozenset(
                name for name, on in capabilities.model_dump().items() if on is True)
            deprecated = getattr(card, "deprecation", None) is not None
            for name in dict.fromkeys([card.id, *(getattr(card, "aliases", None) or [])]):
                found.append((name, caps, deprecated))
        with self._lock:
            self._cards[key] = found
        return found

    def of(self, model: str) -> frozenset[str] | None:
        """The capabilities of `model` (an id or alias), or None when the cards do not say."""
        for name, caps, _ in self._listing() or []:
            if name == model:
                return caps
        return None

    def able(self, capability: str) -> list[str]:
        """The listed names that have `capability`, current models first."""
        listing = self._listing() or []
        current = [n for n, caps, old in listing if capability in caps and not old]
        return list(dict.fromkeys(current + [n for n, caps, old in listing
                                             if capability in caps and old]))

    def require(self, model: str, capability: str) -> None:
        """Refuse (`ConfigError`, one line) a model whose card lacks `capability`."""
        caps = self.of(model)
        if caps is None or capability in caps:
            return
        able = self.able(capability)
        if capability == "vision":
            able = [n for n in able if "completion_chat" in (self.of(n) or ())]
        suggestion = f"; use -m {able[0]}" if able else ""
        if len(able) > 1:
            suggestion += f", or another model that can: {', '.join(able[1:SHOWN])}"
        raise ConfigError(f"{model} cannot {DOING.get(capability, capability)}: its model card "
                          f"lists no {capability} capability{suggestion}")
