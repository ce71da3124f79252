"""Request bodies of the Conversations, Agents and Libraries APIs, as the spec validates them.

Tools are the spec's discriminated union (`function`, `web_search`, `web_search_premium`,
`code_interpreter`, `image_generation`, `document_library`, `connector`); entries are
the input union (`message.input`, `message.output`, `function.call`, `function.result`,
`tool.execution`, `agent.handoff`), told apart by `type` (a message entry may leave it
out: an entry with a `role` is a message).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from .wire import Function


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ToolConfiguration(_Strict):
    exclude: list[str] | None = None
    include: list[str] | None = None
    requires_confirmation: list[str] | None = None


class FunctionTool(_Strict):
    type: Literal["function"] = "function"
    function: Function


class BuiltinTool(_Strict):
    type: Literal["web_search", "web_search_premium", "code_interpreter", "image_generation"]
    tool_configuration: ToolConfiguration | None = None


class LibraryTool(_Strict):
    type: Literal["document_library"] = "document_library"
    library_ids: list[str] = Field(min_length=1)
    tool_configuration: ToolConfiguration | None = None


class ConnectorTool(_Strict):
    type: Literal["connector"] = "connector"
    connector_id: str
    authorization: Any = None
    tool_configuration: ToolConfiguration | None = None


def _tool_kind(value: Any) -> str:
    kind = value.get("type", "function") if isinstance(value, dict) else getattr(value, "type", "function")
    return kind if kind in ("function", "document_library", "connector") else "builtin"


AnyTool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[BuiltinTool, Tag("builtin")]
    | Annotated[LibraryTool, Tag("document_library")] | Annotated[ConnectorTool, Tag("connector")],
    Discriminator(_tool_kind),
]


class CompletionArgs(_Strict):
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=0)
    random_seed: int | None = Field(None, ge=0)
    prediction: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    tool_choice: Literal["auto", "none", "any", "required"] = "auto"
    reasoning_effort: str | None = None


class _Entry(_Strict):
    object: Literal["entry"] = "entry"
    id: str | None = None
    created_at: str | None = None
    completed_at: str | None = None


class MessageInputEntry(_Entry):
    type: Literal["message.input"] = "message.input"
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]
    prefix: bool = False


class MessageOutputEntry(_Entry):
    type: Literal["message.output"] = "message.output"
    role: Literal["assistant"] = "assistant"
    content: str | list[dict[str, Any]]
    agent_id: str | None = None
    model: str | None = None


class FunctionCallEntry(_Entry):
    type: Literal["function.call"] = "function.call"
    tool_call_id: str
    name: str
    arguments: dict[str, Any] | str
    agent_id: str | None = None
    model: str | None = None
    confirmation_status: Literal["pending", "allowed", "denied"] | None = None


class FunctionResultEntry(_Entry):
    type: Literal["function.result"] = "function.result"
    tool_call_id: str
    result: str


class ToolExecutionEntry(_Entry):
    type: Literal["tool.execution"] = "tool.execution"
    name: str
    arguments: str
    info: dict[str, Any] | None = None
    agent_id: str | None = None
    model: str | None = None


class HandoffEntry(_Entry):
    type: Literal["agent.handoff"] = "agent.handoff"
    previous_agent_id: str
    previous_agent_name: str
    next_agent_id: str
    next_agent_name: str


def _entry_kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("type") or ("message.input" if "role" in value else "message.input")
    return getattr(value, "type", "message.input")


Entry = Annotated[
    Annotated[MessageInputEntry, Tag("message.input")] | Annotated[MessageOutputEntry, Tag("message.output")]
    | Annotated[FunctionCallEntry, Tag("function.call")] | Annotated[FunctionResultEntry, Tag("function.result")]
    | Annotated[ToolExecutionEntry, Tag("tool.execution")] | Annotated[HandoffEntry, Tag("agent.handoff")],
    Discriminator(_entry_kind),
]


class _Turn(_Strict):
    inputs: str | list[Entry]
    stream: bool | None = False
    store: bool | None = True
    handoff_execution: Literal["client", "server"] | None = "server"
    completion_args: CompletionArgs | None = None


class StartRequest(_Turn):
    instructions: str | None = None
    tools: list[AnyTool] | None = None
    guardrails: list[dict[str, Any]] | None = None
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    agent_id: str | None = None
    agent_version: str | int | None = None
    model: str | None = None


class AppendRequest(_Turn):
    inputs: str | list[Entry] = Field(default_factory=list)
    tool_confirmations: list[dict[str, Any]] | None = None


class RestartRequest(_Turn):
    from_entry_id: str
    guardrails: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    agent_version: str | int | None = None


class AgentFields(_Strict):
    instructions: str | None = None
    tools: list[AnyTool] | None = None
    completion_args: CompletionArgs | None = None
    guardrails: list[dict[str, Any]] | None = None
    description: str | None = None
    handoffs: list[str] | None = Field(None, min_length=1)
    metadata: dict[str, Any] | None = None
    version_message: str | None = Field(None, max_length=500)


class CreateAgent(AgentFields):
    model: str
    name: str


class UpdateAgent(AgentFields):
    model: str | None = None
    name: str | None = None
    deployment_chat: bool | None = None


class CreateLibrary(BaseModel):
    name: str
    description: str | None = None
    chunk_size: int | None = Field(None, ge=256, le=32768)
    owner_type: Literal["User", "Workspace"] | None = None


class UpdateLibrary(BaseModel):
    name: str | None = None
    description: str | None = None


class UpdateDocument(BaseModel):
    name: str | None = None
    attributes: dict[str, Any] | None = None
    expires_at: str | None = None
