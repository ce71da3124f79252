"""Fine-tuned models offline: the account's one ``ft:`` model, listed, renamed, archived, unarchived.

Fine-tuning jobs can no longer be created through the API (the spec and the SDK dropped
them), so the offline account simply has one fine-tuned model (`catalogue.FINE_TUNED`).
``GET /v1/models`` lists it as an `FTModelCard` (type ``fine-tuned``, its ``root`` base
model, ``job`` and ``archived``) after the base models, and ``GET /v1/models/{id}``
answers with that card. ``PATCH /v1/fine_tuning/models/{id}`` sets its ``name`` and
``description`` (answering a `CompletionFineTunedModel`), and ``POST`` / ``DELETE
/v1/fine_tuning/models/{id}/archive`` archive and unarchive it (``{id, object,
archived}``). Each server keeps that state for its life. A chat with the model is
answered as its base model's is; an archived one still answers (whether the hosted API
refuses it is not documented). Any other id gets 404 in the API's error shape.
"""

from __future__ import annotations

import threading
import uuid

from . import catalogue
from .wire import RequestError, error_body

WORKSPACE = "0ff11ce0-0000-4000-8000-00000000f17e"
_FT_CAPABILITIES = ("completion_chat", "completion_fim", "function_calling", "fine_tuning",
                    "classification")


def root_of(model: catalogue.Model) -> str:
    """The base model a fine-tuned id names (``ft:BASE:...``)."""
    return model.id.split(":")[1]


class FineTunedModels:
    """One server's fine-tuned models: their cards and what a client changed (name, archived)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = {m.id: {"name": None, "description": m.description, "archived": False}
                       for m in catalogue.FINE_TUNED}
        self._jobs = {m.id: str(uuid.uuid5(uuid.NAMESPACE_URL, m.id)) for m in catalogue.FINE_TUNED}

    def _model(self, model_id: str) -> catalogue.Model:
        found = next((m for m in catalogue.FINE_TUNED if m.id == model_id), None)
        if found is None:
            raise RequestError(404, error_body(
                f"Fine-tuned model {model_id} not found in this workspace; GET /v1/models lists "
                "the models whose type is fine-tuned", "invalid_model", "1500"))
        return found

    def is_fine_tuned(self, model_id: str) -> bool:
        return any(m.id == model_id for m in catalogue.FINE_TUNED)

    def card(self, model_id: str) -> dict:
        """The FTModelCard ``/v1/models`` gives for it."""
        model = self._model(model_id)
        with self._lock:
            state = dict(self._state[model.id])
        card = model.card()
        base = catalogue.find(root_of(model))
        card.update(type="fine-tuned", owned_by="offline-workspace", job=self._jobs[model.id],
                    root=root_of(model), archived=state["archived"], name=state["name"] or model.id,
                    description=state["description"],
                    default_model_temperature=base.temperature if base else None)
        return card

    def cards(self) -> list[dict]:
        return [self.card(m.id) for m in catalogue.FINE_TUNED]

    def update(self, model_id: str, body: dict) -> dict:
        """PATCH: set the name and/or description; the CompletionFineTunedModel."""
        model = self._model(model_id)
        with self._lock:
            for field in ("name", "description"):
                if body.get(field) is not None:
                    self._state[model.id][field] = body[field]
        return self.detail(model_id)

    def archive(self, model_id: str, archived: bool) -> dict:
        model = self._model(model_id)
        with self._lock:
            self._state[model.id]["archived"] = archived
        return {"id": model.id, "object": "model", "archived": archived}

    def detail(self, model_id: str) -> dict:
        """The CompletionFineTunedModel the fine-tuning routes answer with."""
        model = self._model(model_id)
        card = self.card(model_id)
        return {
            "id": model.id, "object": "model", "created": card["created"],
            "owned_by": card["owned_by"], "workspace_id": WORKSPACE, "root": card["root"],
            "root_version": card["root"].rsplit("-", 1)[-1], "archived": card["archived"],
            "name": card["name"], "description": card["description"],
            "capabilities": {cap: cap in model.capabilities for cap in _FT_CAPABILITIES},
            "max_context_length": model.context, "aliases": [], "job": self._jobs[model.id],
            "model_type": "completion",
        }
