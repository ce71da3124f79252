"""Which models the backend has, and what each can do: checked before anything is sent.

`Capabilities(session).check(model)` raises a one-line `ConfigError` for a model id the
backend does not have, with the nearest name it has ("did you mean
mistral-large-latest?"), before a request, a ledger row or a chat turn exists. The
names are the offline catalogue's offline, and otherwise the backend's own
``models.list`` (La Plateforme's includes the account's fine-tuned ``ft:`` models; a
self-hosted server such as vLLM lists what it serves).

`require(model, "vision")` refuses, naming models that can, when the backend's card
says `model` cannot.

The cards are listed once per backend (rebuilt when a setting or the key changes) and
kept for the session, a listing that failed too. The names listed are remembered for
the next kernels (`listings`, a day): a model named there passes `check` without a
listing being asked for first. Where they cannot be had (replaying,
which never reaches a server; a listing that fails, e.g. a server without /v1/models)
nothing is refused here, and the server's own answer stands.
"""

from __future__ import annotations

import difflib
import threading
import weakref

from ..errors import ConfigError

SHOWN = 6  # models named in a refusal
_BACKENDS = {"offline": "the offline server", "mistral": "La Plateforme",
             "self-hosted": "the self-hosted server"}
DOING = {"vision": "see images", "ocr": "read documents with OCR", "audio": "listen to audio",
         "audio_transcription": "transcribe audio", "audio_speech": "speak"}


class Capabilities:
    """Model cards of the session's backend: `of(model)`, `able(capability)`, `require`."""

    def __init__(self, session):
        # A proxy: the session keeps this object, which must not keep the session alive (a
        # cycle would leave its SDK client to be closed by a later, random garbage collection).
        self.session = weakref.proxy(session)
        self._cards: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _listing(self) -> list[tuple[str, frozenset[str], bool]] | None:
        """(id or alias, capabilities, deprecated) of every listed name; None when unknown."""
        session = self.session
        if session.responses.mode == "replay":
            return None
        backend = session.backend
        with self._lock:
            if backend in self._cards:
                return self._cards[backend]
        from .backend import retry_config

        try:
            # One try: a listing that fails only turns the checks off, it must not hold the cell.
            cards = backend.client.models.list(retries=retry_config(0)).data or []
        except Exception:  # no listing (network, a server without /v1/models): no check here
            found = None
        else:
            found = []
            for card in cards:
                capabilities = getattr(card, "capabilities", None)
                caps = frozenset() if capabilities is None else frozenset(
                    name for name, on in capabilities.model_dump().items() if on is True)
                deprecated = getattr(card, "deprecation", None) is not None
                for name in dict.fromkeys([card.id, *(getattr(card, "aliases", None) or [])]):
                    found.append((name, caps, deprecated))
        with self._lock:
            self._cards[backend] = found
        if found is not None:
            from . import listings

            spec = backend.spec
            listings.remember(spec.kind, spec.url, (name for name, _, _ in found))
        return found

    def names(self) -> frozenset[str] | None:
        """Every model id and alias the backend has, or None when that cannot be known."""
        session = self.session
        if session.responses.mode == "replay":
            return None
        if session.backend_spec().kind == "offline":
            from ..offline import catalogue

            models = (*catalogue.MODELS, *catalogue.FINE_TUNED)  # the offline account's ft: model too
            return frozenset(name for model in models for name in model.names())
        listing = self._listing()
        return None if listing is None else frozenset(name for name, _, _ in listing)

    def check(self, model: str, *, setting: str | None = None) -> None:
        """Refuse (`ConfigError`, one line) a model the backend does not have, with the
        nearest name it has; `setting` names where the model came from, if not typed."""
        if self._remembered(model):
            return
        known = self.names()
        if known is None or model in known:
            return
        from ..offline import catalogue

        where = f" in {setting}" if setting else ""
        if model in catalogue.RETIRED:
            date, successor = catalogue.RETIRED[model]
            raise ConfigError(f"Mistral retired {model}{where} on {date}; use {successor} instead")
        backend = _BACKENDS.get(self.session.backend_spec().kind, "the backend")
        near = _nearest(model, known)
        fix = f"did you mean {near}?" if near else "%mistral models lists the models it has"
        raise ConfigError(f"Unknown model {model}{where}: {backend} has no such model; {fix}")

    def _remembered(self, model: str) -> bool:
        """Whether the backend listed `model` for an earlier kernel (`listings`), when this
        session has no listing of its own yet: then none is asked for before sending."""
        session = self.session
        if session.responses.mode == "replay" or session.backend_spec().kind == "offline":
            return False  # (the offline catalogue is at hand: no server is started for it)
        backend = session.backend
        with self._lock:
            if backend in self._cards:
                return False
        from . import listings

        return model in listings.recall(backend.kind, backend.url)

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
        if capability in ("vision", "audio"):
            able = [n for n in able if "completion_chat" in (self.of(n) or ())]
        suggestion = f"; use -m {able[0]}" if able else ""
        if len(able) > 1:
            suggestion += f", or another model that can: {', '.join(able[1:SHOWN])}"
        raise ConfigError(f"{model} cannot {DOING.get(capability, capability)}: its model card "
                          f"lists no {capability} capability{suggestion}")


def _nearest(model: str, known: frozenset[str]) -> str | None:
    """The known name nearest to `model` (case aside), if one is near enough."""
    by_lower = {name.lower(): name for name in sorted(known)}
    found = difflib.get_close_matches(model.lower(), by_lower, n=1)
    return by_lower[found[0]] if found else None
