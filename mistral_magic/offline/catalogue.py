"""The offline model catalogue: current Mistral ids, aliases and capabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

CREATED = 1767225600  # 2026-01-01: a fixed date keeps every card deterministic

_CAPABILITIES = (
    "completion_chat", "function_calling", "completion_fim", "fine_tuning", "vision",
    "ocr", "classification", "moderation", "reasoning", "audio", "audio_transcription",
    "audio_transcription_realtime", "audio_speech", "unified_resources",
)


@dataclass(frozen=True)
class Model:
    id: str
    aliases: tuple[str, ...]
    context: int
    capabilities: frozenset[str]
    description: str
    kind: str = "chat"  # chat | fim-chat | embed | moderation | ocr
    temperature: float | None = 0.3
    dimensions: int = 0
    max_dimensions: int = 0
    extra: dict = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def card(self, as_id: str | None = None) -> dict:
        """The BaseModelCard, named as requested (an alias answers as itself, like the API)."""
        name = as_id or self.id
        return {
            "id": name,
            "object": "model",
            "created": CREATED,
            "owned_by": "mistralai",
            "capabilities": {cap: cap in self.capabilities for cap in _CAPABILITIES},
            "name": self.id,
            "description": f"{self.description} (offline stand-in: answers are generated locally)",
            "max_context_length": self.context,
            "aliases": [n for n in self.names() if n != name],
            "deprecation": None,
            "deprecation_replacement_model": None,
            "default_model_temperature": self.temperature,
            "type": "base",
        }


_CHAT = frozenset({"completion_chat", "function_calling", "vision"})
K256, K128, K8 = 262144, 131072, 8192

MODELS: tuple[Model, ...] = (
    Model("mistral-large-2512", ("mistral-large-latest",), K256, _CHAT,
          "Mistral Large 3: the flagship general-purpose multimodal model"),
    Model("mistral-medium-3-5", ("mistral-medium-latest",), K256, _CHAT,
          "Mistral Medium 3.5: frontier-class multimodal model"),
    Model("mistral-small-2603", ("mistral-small-latest",), K256, _CHAT,
          "Mistral Small: fast, efficient multimodal model"),
    Model("ministral-14b-2512", ("ministral-14b-latest",), K256, _CHAT,
          "Ministral 3 14B: small model with vision"),
    Model("ministral-8b-2512", ("ministral-8b-latest",), K256, _CHAT,
          "Ministral 3 8B: small model with vision"),
    Model("ministral-3b-2512", ("ministral-3b-latest",), K256, _CHAT,
          "Ministral 3 3B: tiny model with vision"),
    Model("codestral-2508", ("codestral-latest",), K128,
          frozenset({"completion_chat", "function_calling", "completion_fim"}),
          "Codestral: code generation and fill-in-the-middle", kind="fim-chat", temperature=0.2),
    Model("mistral-embed", (), K8, frozenset(), "Mistral Embed: text embeddings",
          kind="embed", temperature=None, dimensions=1024, max_dimensions=1024),
    Model("codestral-embed", (), K8, frozenset(), "Codestral Embed: code embeddings",
          kind="embed", temperature=None, dimensions=1536, max_dimensions=3072),
    Model("mistral-moderation-2603", ("mistral-moderation-latest",), K128,
          frozenset({"classification", "moderation"}), "Mistral Moderation: content classification",
          kind="moderation", temperature=None),
    Model("mistral-ocr-2512", ("mistral-ocr-latest",), K128, frozenset({"ocr"}),
          "Mistral OCR: document understanding", kind="ocr", temperature=None),
)

_BY_NAME = {name: model for model in MODELS for name in model.names()}


def find(name: str) -> Model | None:
    """The model behind an id or alias, or None."""
    return _BY_NAME.get(name)


def all_cards() -> list[dict]:
    """Every id and every alias as its own card, as the API lists them."""
    return [model.card(name) for model in MODELS for name in model.names()]
