"""Request bodies as the API validates them (extra fields forbidden, as in the spec)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TextChunk(_Strict):
    type: Literal["text"] = "text"
    text: str


class ImageURL(_Strict):
    url: str
    detail: Literal["low", "auto", "high"] | None = None


class ImageURLChunk(_Strict):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL | str

    def url(self) -> str:
        return self.image_url if isinstance(self.image_url, str) else self.image_url.url


class DocumentURLChunk(_Strict):
    type: Literal["document_url"] = "document_url"
    document_url: str
    document_name: str | None = None


class FileChunk(_Strict):
    type: Literal["file"] = "file"
    file_id: str


class ReferenceChunk(_Strict):
    type: Literal["reference"] = "reference"
    reference_ids: list[int | str]


class ToolReferenceChunk(BaseModel):
    """A tool's reference inside a thinking chunk (read past, kept as sent)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["tool_reference"] = "tool_reference"


class ThinkChunk(_Strict):
    type: Literal["thinking"] = "thinking"
    thinking: list[TextChunk | ReferenceChunk | ToolReferenceChunk]
    signature: str | None = None
    # The spec's default is true; None here keeps the body's own form for token counts.
    closed: bool | None = None


class AudioChunk(_Strict):
    type: Literal["input_audio"] = "input_audio"
    input_audio: str


def _chunk_kind(value: Any) -> str:
    kind = value.get("type", "text") if isinstance(value, dict) else getattr(value, "type", "text")
    return kind if kind in _CHUNKS else "text"


_CHUNKS = {"text": TextChunk, "image_url": ImageURLChunk, "document_url": DocumentURLChunk,
           "reference": ReferenceChunk, "file": FileChunk, "thinking": ThinkChunk, "input_audio": AudioChunk}

Chunk = Annotated[
    Annotated[TextChunk, Tag("text")] | Annotated[ImageURLChunk, Tag("image_url")]
    | Annotated[DocumentURLChunk, Tag("document_url")] | Annotated[ReferenceChunk, Tag("reference")]
    | Annotated[FileChunk, Tag("file")] | Annotated[ThinkChunk, Tag("thinking")]
    | Annotated[AudioChunk, Tag("input_audio")],
    Discriminator(_chunk_kind),
]
SystemChunk = Annotated[
    Annotated[TextChunk, Tag("text")] | Annotated[ThinkChunk, Tag("thinking")],
    Discriminator(lambda v: "thinking" if _chunk_kind(v) == "thinking" else "text"),
]


class FunctionCall(_Strict):
    name: str
    arguments: dict[str, Any] | str


class ToolCall(_Strict):
    id: str = "null"
    type: Literal["function"] = "function"
    function: FunctionCall
    index: int = 0


class SystemMessage(_Strict):
    role: Literal["system"] = "system"
    content: str | list[SystemChunk]


class UserMessage(_Strict):
    role: Literal["user"] = "user"
    content: str | list[Chunk] | None


class AssistantMessage(_Strict):
    role: Literal["assistant"] = "assistant"
    content: str | list[Chunk] | None = None
    tool_calls: list[ToolCall] | None = None
    prefix: bool = False


class ToolMessage(_Strict):
    role: Literal["tool"] = "tool"
    content: str | list[Chunk] | None
    tool_call_id: str | None = None
    name: str | None = None


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


class Function(_Strict):
    name: str
    description: str = ""
    parameters: dict[str, Any]
    strict: bool = False


class Tool(_Strict):
    type: Literal["function"] = "function"
    function: Function


class FunctionName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"] = "function"
    function: FunctionName


class JsonSchema(_Strict):
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool = False


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchema | None = None


class _Sampling(_Strict):
    model: str
    temperature: float | None = Field(None, ge=0, le=1.5)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=0)
    stream: bool = False
    stop: str | list[str] | None = None
    random_seed: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None
    prompt_cache_key: str | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s]


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "any", "required"] | NamedToolChoice = "auto"
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int | None = Field(None, ge=1)
    prediction: dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    prompt_mode: Literal["reasoning"] | None = None
    guardrails: list[Any] | None = None
    service_tier: Any = None
    safe_prompt: bool = False


class FIMRequest(_Sampling):
    prompt: str
    suffix: str | None = ""
    min_tokens: int | None = Field(None, ge=0)


class EmbeddingRequest(_Strict):
    model: str
    input: str | list[str] = Field(alias="input")
    output_dimension: int | None = Field(None, gt=0)
    output_dtype: Literal["float", "int8", "uint8", "binary", "ubinary"] = "float"
    encoding_format: Literal["float", "base64"] = "float"
    metadata: dict[str, Any] | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ClassificationRequest(_Strict):
    """POST /v1/moderations and /v1/classifications: texts."""

    model: str
    input: str | list[str]
    metadata: dict[str, Any] | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ChatModerationRequest(_Strict):
    """POST /v1/chat/moderations: one conversation, or several."""

    model: str
    input: list[Message] | list[list[Message]]

    def conversations(self) -> list[list]:
        if self.input and isinstance(self.input[0], list):
            return list(self.input)
        return [list(self.input)]


class InstructRequest(_Strict):
    messages: list[Message]


class ChatClassificationRequest(_Strict):
    """POST /v1/chat/classifications: one conversation ({"messages"}), or several."""

    model: str
    input: InstructRequest | list[InstructRequest]

    def conversations(self) -> list[list]:
        items = self.input if isinstance(self.input, list) else [self.input]
        return [item.messages for item in items]


def _document_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("type") or next((k for k in ("file_id", "document_url", "image_url") if k in value), "")
        return {"file_id": "file"}.get(kind, kind)
    return getattr(value, "type", "")


Document = Annotated[
    Annotated[FileChunk, Tag("file")] | Annotated[DocumentURLChunk, Tag("document_url")]
    | Annotated[ImageURLChunk, Tag("image_url")],
    Discriminator(_document_kind),
]


class OCRRequest(_Strict):
    model: str | None
    document: Document
    pages: str | list[Annotated[int, Field(ge=0)]] | None = None
    include_image_base64: bool | None = None
    image_limit: int | None = None
    image_min_size: int | None = None
    bbox_annotation_format: ResponseFormat | None = None
    document_annotation_format: ResponseFormat | None = None
    document_annotation_prompt: str | None = None
    table_format: Literal["markdown", "html"] | None = None
    extract_header: bool = False
    extract_footer: bool = False
    include_blocks: bool = True
    confidence_scores_granularity: Literal["word", "page", "block"] | None = None


class BatchRequestLine(BaseModel):
    custom_id: str | None = None
    body: dict[str, Any]


class BatchCreate(_Strict):
    input_files: list[str] | None = None
    requests: list[BatchRequestLine] | None = Field(None, max_length=10000)
    endpoint: Literal[
        "/v1/chat/completions", "/v1/embeddings", "/v1/fim/completions", "/v1/moderations",
        "/v1/chat/moderations", "/v1/ocr", "/v1/classifications", "/v1/chat/classifications",
        "/v1/conversations", "/v1/audio/transcriptions",
    ]
    model: str | None = None
    agent_id: str | None = None
    metadata: dict[Annotated[str, StringConstraints(min_length=1, max_length=32)],
                   Annotated[str, StringConstraints(min_length=1, max_length=512)]] | None = None
    timeout_hours: int = Field(24, ge=1, le=168)


class RequestError(Exception):
    """A request the API would refuse: carries the status and the JSON body to send."""

    def __init__(self, status: int, body: dict):
        super().__init__(body.get("message") or body.get("detail"))
        self.status = status
        self.body = body


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict:
    """The API's error object."""
    return {"object": "error", "message": message, "type": kind, "param": param, "code": code}


def validation_error(exc: ValidationError, where: str = "body") -> RequestError:
    """FastAPI's 422 shape: detail[] with loc prefixed by where the value was."""
    detail = []
    for err in json.loads(exc.json(include_url=False)):
        item = {"type": err["type"], "loc": [where, *err["loc"]], "msg": err["msg"], "input": err.get("input")}
        if err.get("ctx"):
            item["ctx"] = err["ctx"]
        detail.append(item)
    return RequestError(422, {"detail": detail})


def parse(model: type[BaseModel], data: Any) -> Any:
    """Validate a decoded JSON body, or raise the 422 the API would send."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None

