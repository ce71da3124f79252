"""The offline model catalogue: every Mistral model id the spec, the SDK's examples and the docs use.

Source: Mistral's public docs repository (`src/schema/models/models/*.ts`, 2026-08-21,
the same snapshot as `prices.json`), which gives each model's API names (the first is
its id, the rest aliases), context length, input/output modalities, features, status
and retirement date. The catalogue serves every model the docs list as generally
available, in public preview or deprecated (deprecated ones carry their retirement
date in `deprecation` and their successor in `deprecation_replacement_model`, as the
hosted cards do); ids the docs list as retired answer 400 naming their replacement.

Capabilities follow the docs: `completion_chat` for chat-completions, `vision` for
image input, `function_calling`, `completion_fim`, `reasoning` for models whose
output includes reasoning, plus the adjustable ones the reasoning guide names
(`mistral-small-latest`, `mistral-medium-3-5`). Reasoning models accept
`reasoning_effort` "none" or "high" (the hosted API refuses the other values with
"Must be one of ..."); the native Magistral models always think unless told "none".
`documents` marks models with the docs' document-qna feature (document chunks in chat).
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

_CAPABILITIES = (
    "completion_chat", "function_calling", "completion_fim", "fine_tuning", "vision",
    "ocr", "classification", "moderation", "reasoning", "audio", "audio_transcription",
    "audio_transcription_realtime", "audio_speech", "unified_resources",
)
K1M, K256, K128, K32, K8 = 1048576, 262144, 131072, 32768, 8192
DOCS_DATE = "2026-08-21"


@dataclass(frozen=True)
class Model:
    id: str
    aliases: tuple[str, ...]
    context: int
    capabilities: frozenset[str]
    description: str
    released: str
    kind: str = "chat"  # chat | embed | moderation | ocr | transcription | speech
    temperature: float | None = 0.3
    dimensions: int = 0
    max_dimensions: int = 0
    efforts: tuple[str, ...] = ()  # reasoning_effort values accepted; () = cannot reason
    native_reasoning: bool = False  # thinks unless reasoning_effort is "none" (Magistral)
    documents: bool = False  # reads document_url / file chunks in chat
    retires: str | None = None
    replacement: str | None = None

    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def card(self, as_id: str | None = None) -> dict:
        """The BaseModelCard, named as requested (an alias answers as itself, like the API)."""
        name = as_id or self.id
        return {
            "id": name,
            "object": "model",
            "created": _epoch(self.released),
            "owned_by": "mistralai",
            "capabilities": {cap: cap in self.capabilities for cap in _CAPABILITIES},
            "name": self.id,
            "description": f"{self.description} (offline stand-in: answers are generated locally)",
            "max_context_length": self.context,
            "aliases": [n for n in self.names() if n != name],
            "deprecation": f"{self.retires}T00:00:00Z" if self.retires else None,
            "deprecation_replacement_model": self.replacement,
            "default_model_temperature": self.temperature,
            "type": "base",
        }


def _epoch(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp())


def _caps(*names: str) -> frozenset[str]:
    return frozenset(names)


_TEXT = _caps("completion_chat", "function_calling")
_VISION = _caps("completion_chat", "function_calling", "vision")
_THINK = ("none", "high")


def _chat(model_id: str, aliases: tuple[str, ...], context: int, caps: frozenset[str], description: str,
          released: str, **extra) -> Model:
    return Model(model_id, aliases, context, caps, description, released, documents=True, **extra)


MODELS: tuple[Model, ...] = (
    # General purpose
    _chat("mistral-large-2512", ("mistral-large-latest",), K256, _VISION,
          "Mistral Large 3: a state-of-the-art, open-weight, general-purpose multimodal model", "2025-12-02"),
    _chat("mistral-medium-3-5", ("mistral-medium-3", "mistral-medium-latest"), K256, _VISION | {"reasoning"},
          "Mistral Medium 3.5: frontier-class multimodal model with adjustable reasoning", "2026-04-28",
          efforts=_THINK),
    _chat("mistral-medium-2508", (), K128, _VISION,
          "Mistral Medium 3.1: frontier-class multimodal model released August 2025", "2025-08-12",
          retires="2026-08-31", replacement="mistral-medium-3-5"),
    _chat("mistral-medium-2505", (), K128, _VISION,
          "Mistral Medium 3: frontier-class multimodal model released May 2025", "2025-05-07",
          retires="2026-08-31", replacement="mistral-medium-3-5"),
    _chat("mistral-small-2603", ("mistral-small-latest",), K256, _VISION | {"reasoning"},
          "Mistral Small 4: hybrid model unifying instruct, reasoning and coding", "2026-03-16",
          efforts=_THINK),
    _chat("mistral-small-2506", (), K128, _VISION,
          "Mistral Small 3.2: small multimodal model released June 2025", "2025-06-20",
          retires="2026-07-31", replacement="mistral-small-2603"),
    _chat("mistral-large-2411", (), K128, _TEXT,
          "Mistral Large 2.1: large model for high-complexity tasks", "2024-11-18",
          retires="2026-05-31", replacement="mistral-medium-3-5"),
    _chat("ministral-14b-2512", ("ministral-14b-latest",), K256, _VISION,
          "Ministral 3 14B: text and vision in a small model", "2025-12-02"),
    _chat("ministral-8b-2512", ("ministral-8b-latest",), K256, _VISION,
          "Ministral 3 8B: efficient text and vision model", "2025-12-02"),
    _chat("ministral-3b-2512", ("ministral-3b-latest",), K256, _VISION,
          "Ministral 3 3B: tiny text and vision model", "2025-12-02"),
    _chat("ministral-8b-2410", (), K128, _TEXT, "Ministral 8B: edge model", "2024-10-09",
          retires="2025-12-31", replacement="ministral-8b-2512"),
    _chat("ministral-3b-2410", (), K128, _TEXT, "Ministral 3B: edge model", "2024-10-09",
          retires="2025-12-31", replacement="ministral-3b-2512"),
    _chat("open-mistral-nemo-2407", ("open-mistral-nemo",), K128, _TEXT,
          "Mistral Nemo 12B: multilingual open model", "2024-07-18",
          retires="2026-07-31", replacement="ministral-8b-2512"),
    _chat("labs-mistral-small-creative", (), K32, _TEXT,
          "Mistral Small Creative: creative writing and character interaction", "2025-12-11",
          retires="2026-04-30", replacement="ministral-8b-2512"),
    # Reasoning (native: always thinks)
    _chat("magistral-medium-2509", ("magistral-medium-latest",), K128, _VISION | {"reasoning"},
          "Magistral Medium 1.2: frontier-class multimodal reasoning model", "2025-09-18",
          efforts=_THINK, native_reasoning=True, temperature=0.7,
          retires="2026-07-31", replacement="mistral-medium-3-5"),
    _chat("magistral-small-2509", ("magistral-small-latest",), K128, _VISION | {"reasoning"},
          "Magistral Small 1.2: small multimodal reasoning model", "2025-09-18",
          efforts=_THINK, native_reasoning=True, temperature=0.7,
          retires="2026-07-31", replacement="mistral-small-2603"),
    Model("zai-glm-5-2", (), K1M, _TEXT | {"reasoning"}, "Z.ai GLM 5.2, served by Mistral", "2026-08-06",
          efforts=_THINK),
    # Code
    _chat("codestral-2508", ("codestral-latest",), K128, _TEXT | {"completion_fim"},
          "Codestral: code completion and fill-in-the-middle", "2025-07-30", temperature=0.2),
    _chat("devstral-2512", ("devstral-latest", "devstral-medium-latest"), K256, _TEXT,
          "Devstral 2: code agents for software engineering tasks", "2025-12-09", temperature=0.2,
          retires="2026-07-31", replacement="mistral-medium-3-5"),
    _chat("devstral-medium-2507", (), K128, _TEXT, "Devstral Medium 1.0: software engineering model",
          "2025-07-10", temperature=0.2, retires="2026-05-31", replacement="mistral-medium-3-5"),
    _chat("devstral-small-2507", (), K128, _TEXT, "Devstral Small 1.1: open software engineering model",
          "2025-07-10", temperature=0.2, retires="2026-05-31", replacement="mistral-small-2603"),
    _chat("labs-devstral-small-2512", ("devstral-small-latest",), K256, _VISION,
          "Devstral Small 2: tools to explore codebases and edit files", "2025-12-09", temperature=0.2,
          retires="2026-03-31", replacement="mistral-medium-3-5"),
    Model("labs-leanstral-1-5", (), K256, _VISION, "Leanstral 1.5: Lean 4 formal proof engineering",
          "2026-06-30", temperature=0.2, retires="2026-09-30"),
    # Vision
    _chat("pixtral-large-2411", ("pixtral-large-latest",), K128, _VISION,
          "Pixtral Large: frontier-class multimodal model", "2024-11-18",
          retires="2026-05-31", replacement="mistral-medium-3-5"),
    _chat("pixtral-12b-2409", (), K128, _VISION, "Pixtral 12B: image understanding in addition to text",
          "2024-09-11", retires="2025-12-31", replacement="ministral-14b-2512"),
    # Audio
    _chat("voxtral-small-2507", ("voxtral-small-latest",), K32, _TEXT | {"audio"},
          "Voxtral Small: audio input for instruct use cases", "2025-07-15"),
    Model("voxtral-mini-2507", (), K32, _caps("completion_chat", "audio", "audio_transcription"),
          "Voxtral Mini: audio input and transcription", "2025-07-15", documents=True,
          retires="2026-05-31", replacement="voxtral-mini-2602"),
    Model("voxtral-mini-2602", ("voxtral-mini-latest",), K32, _caps("audio_transcription"),
          "Voxtral Mini Transcribe 2: transcription", "2026-02-04", kind="transcription", temperature=None),
    Model("voxtral-mini-transcribe-realtime-2602", ("voxtral-mini-transcribe-realtime-latest",), K32,
          _caps("audio_transcription_realtime"), "Voxtral Mini Transcribe Realtime: live transcription",
          "2026-02-04", kind="transcription", temperature=None),
    Model("voxtral-mini-tts-2603", ("voxtral-mini-tts-latest",), K32, _caps("audio_speech"),
          "Voxtral TTS: text to speech with voice cloning", "2026-03-23", kind="speech", temperature=None),
    # Voxtral 3 (October 2026; newer than the docs snapshot, ids from the migration guide; the
    # guide gives the month, not the day): no word timestamps; language and timestamps combine.
    Model("voxtral-mini-transcribe-3-0", ("voxtral-mini-transcribe-3", "voxtral-mini-transcribe-latest"), K32,
          _caps("audio_transcription"), "Voxtral Mini Transcribe 3: transcription", "2026-10-01",
          kind="transcription", temperature=None),
    Model("voxtral-small-transcribe-3-0", ("voxtral-small-transcribe-3", "voxtral-small-transcribe-latest"),
          K32, _caps("audio_transcription"), "Voxtral Small Transcribe 3: transcription", "2026-10-01",
          kind="transcription", temperature=None),
    Model("voxtral-mini-transcribe-realtime-3-0", (), K32, _caps("audio_transcription_realtime"),
          "Voxtral Mini Transcribe Realtime 3: live transcription (preview)", "2026-10-01",
          kind="transcription", temperature=None),
    Model("voxtral-mini-tts-3-0", (), K32, _caps("audio_speech"), "Voxtral TTS 3: text to speech",
          "2026-10-01", kind="speech", temperature=None),
    # Embeddings
    Model("mistral-embed-2312", ("mistral-embed",), K8, frozenset(), "Mistral Embed: text embeddings",
          "2023-12-11", kind="embed", temperature=None, dimensions=1024, max_dimensions=1024),
    Model("codestral-embed-2505", ("codestral-embed",), K8, frozenset(), "Codestral Embed: code embeddings",
          "2025-05-28", kind="embed", temperature=None, dimensions=1536, max_dimensions=3072),
    # Moderation
    Model("mistral-moderation-2603", ("mistral-moderation-latest",), K128, _caps("classification", "moderation"),
          "Mistral Moderation 2: moderation with jailbreaking detection", "2026-03-01",
          kind="moderation", temperature=None),
    Model("mistral-moderation-2411", (), K8, _caps("classification", "moderation"),
          "Mistral Moderation: detects harmful text content", "2024-11-06", kind="moderation",
          temperature=None, retires="2026-06-30", replacement="mistral-moderation-2603"),
    # OCR
    Model("mistral-ocr-4-1", ("mistral-ocr-4", "mistral-ocr-latest"), K128, _caps("ocr"),
          "OCR 4.1: paragraph-level boxes, block labels and block confidence scores", "2026-07-16",
          kind="ocr", temperature=None),
    Model("mistral-ocr-4-0", (), K128, _caps("ocr"), "OCR 4.0: paragraph-level boxes and block labels",
          "2026-06-23", kind="ocr", temperature=None),
    Model("mistral-ocr-2512", (), K128, _caps("ocr"), "OCR 3: document AI OCR", "2025-12-18",
          kind="ocr", temperature=None),
    Model("mistral-ocr-2505", (), K128, _caps("ocr"), "OCR 2: document AI OCR", "2025-05-22",
          kind="ocr", temperature=None, retires="2026-05-31", replacement="mistral-ocr-4-1"),
)

# Ids the docs list as retired (or deprecated without a price and past retirement):
# the hosted API answers "Invalid model" for them; offline says what replaced them.
RETIRED: dict[str, tuple[str, str]] = {
    "codestral-2405": ("2025-06-16", "codestral-2508"),
    "codestral-2501": ("2025-11-30", "codestral-2508"),
    "open-codestral-mamba": ("2025-06-06", "codestral-2508"),
    "devstral-small-2505": ("2025-11-30", "mistral-medium-3-5"),
    "labs-leanstral-2603": ("2026-06-30", "labs-leanstral-1-5"),
    **dict.fromkeys(("magistral-medium-2506", "magistral-medium-2507"), ("2025-11-30", "mistral-medium-3-5")),
    **dict.fromkeys(("magistral-small-2506", "magistral-small-2507"), ("2025-11-30", "mistral-small-2603")),
    # The 2023 endpoint names, renamed in 2024 and retired with the models behind them.
    **dict.fromkeys(("open-mistral-7b", "mistral-tiny", "mistral-tiny-2312"), ("2025-03-30", "ministral-8b-2512")),
    **dict.fromkeys(("mistral-small", "mistral-small-2312"), ("2025-03-30", "mistral-small-2603")),
    "mistral-medium": ("2025-06-16", "mistral-medium-3-5"),
    "open-mixtral-8x22b-2404": ("2025-03-30", "mistral-small-2603"),
    **dict.fromkeys(("codestral-mamba-2407", "codestral-mamba-latest"), ("2025-06-06", "codestral-2508")),
    "mistral-large-2402": ("2025-06-16", "mistral-large-2512"),
    "mistral-large-2407": ("2025-03-30", "mistral-large-2512"),
    "mistral-medium-2312": ("2025-06-16", "mistral-medium-3-5"),
    **dict.fromkeys(("mistral-saba-2502", "mistral-saba-latest"), ("2025-09-30", "mistral-small-2603")),
    **dict.fromkeys(("mistral-small-2402", "mistral-small-2409", "mistral-small-2501", "mistral-small-2503"),
                    ("2025-11-30", "mistral-small-2603")),
    **dict.fromkeys(("open-mixtral-8x22b", "open-mixtral-8x7b"), ("2025-03-30", "mistral-small-2603")),
    "mistral-ocr-2503": ("2025-12-31", "mistral-ocr-4-1"),
}
# The offline account's one fine-tuned model (jobs can no longer be created: it is simply
# there). It answers as its base model's chat does; `finetuned` serves its FTModelCard and
# keeps its name, description and archived flag per server.
FINE_TUNED: tuple[Model, ...] = (
    Model("ft:mistral-small-2603:0ff11ce0:20261115:5eedcafe", (), K256, _TEXT,
          "Fine-tuned from Mistral Small 4 on an offline support desk's replies", "2026-11-15"),
)
_BY_NAME = {name: model for model in (*MODELS, *FINE_TUNED) for name in model.names()}


def find(name: str) -> Model | None:
    """The model behind an id or alias, or None."""
    return _BY_NAME.get(name)


def all_cards() -> list[dict]:
    """Every id and every alias as its own card, as the API lists them."""
    return [model.card(name) for model in MODELS for name in model.names()]


def able(capability: str) -> list[str]:
    """Ids of the models with `capability` that are not deprecated, then the deprecated ones."""
    found = [m for m in MODELS if capability in m.capabilities]
    return [m.id for m in found if not m.retires] + [m.id for m in found if m.retires]


def unknown_message(name: str) -> str:
    """Why `name` is refused: retired (with its replacement), or not in the catalogue (with
    the nearest name that is). How to list the models is the client's to say, once."""
    if name in RETIRED:
        date, replacement = RETIRED[name]
        return (f"Invalid model: {name} (Mistral retired it on {date}; use {replacement} instead. "
                "It is not in the offline catalogue)")
    near = difflib.get_close_matches(name, [n for model in MODELS for n in model.names()], n=1)
    return f"Invalid model: {name} (not in the offline catalogue{f'; did you mean {near[0]}?' if near else ''})"
