"""A local server that speaks Mistral's API, so the official SDK works with no key and no network.

    from mistral_magic.offline import OfflineServer, FaultPlan
    from mistralai.client import Mistral

    with OfflineServer() as server:                # free port on 127.0.0.1, random key
        client = Mistral(api_key=server.api_key, server_url=server.url)
        client.chat.complete(model="mistral-small-latest",
                             messages=[{"role": "user", "content": "Hello"}])

Or standalone: `python -m mistral_magic.offline --port 8765` prints its URL and key.

What it serves (everything it makes up is labelled as offline output):
- `GET /v1/models`, `GET /v1/models/{id}`: current Mistral ids and aliases, with
  capabilities and context lengths; an alias works wherever a model is accepted.
- `POST /v1/chat/completions`, whole or streamed (SSE): Markdown answers that quote the
  prompt and refer back to the previous user turn, a Python code block when code is
  asked for; `max_tokens`, `stop`, `random_seed`, assistant `prefix`, `n` (streamed
  too, choices side by side); `response_format` json_object and strict json_schema
  (values filled from the prompt, `pattern` honoured; a re-ask takes them from the
  question, not the feedback); function `tools` with every `tool_choice`.
  Usage is counted with `mistral_magic.tokens`, so client estimates match exactly.
- Sampling: the same request with the same `random_seed` gets the same answer, and
  temperature 0 ignores the seed. Without a seed answers vary as the hosted API's do:
  the k-th repeat of a request gets the k-th answer, so a fresh server replays a
  notebook run exactly (reproducible per server `seed` and request count).
- `POST /v1/fim/completions` (codestral models), `POST /v1/embeddings` (feature
  hashing: similar texts give similar unit vectors; `output_dimension`, `output_dtype`).
- `/v1/files` (upload, list, get, content, delete) and `/v1/batch/jobs` (create from
  files or inline `requests`, list, get with `?inline=true` for `outputs`, cancel,
  delete); jobs finish on their own within about two seconds and write their output
  and error files, see `batch.py` for the line format.
- Errors as the hosted API sends them: 401 `{"detail": "Unauthorized"}` without the
  right bearer key, 422 `detail[]` for invalid bodies, 400 `invalid_model` (code
  1500) for unknown models, the API's input limits (prompt plus `max_tokens` within
  the context; embeddings: 512 inputs, 16,384 tokens). Every other operation of the
  spec (agents, conversations, audio, OCR, libraries, ...) answers 404 in the error
  shape, saying it is not available offline; a path in no spec is a plain 404.
- Limits against abuse (`limits.py`): 413 past 10 MiB of JSON or a 32 MiB upload
  (256 MiB of files in all), 422 for JSON nested past 64 levels or holding a lone
  surrogate, at most 16 choices, structured answers cut at 64 KiB (`finish_reason:
  length`, as a model out of tokens). Work runs in a thread pool, off the event loop.

Fault plans (`FaultPlan`, or a dict of its fields; all default to "no fault"):

    server = OfflineServer(faults={"ttft_ms": 300})       # when created
    server.set_faults(FaultPlan(error_status=503, error_on_nth=[1, 2]))   # at run time
    server.set_faults(None)                               # clear
    client.chat.complete(..., http_headers={"X-Offline-Faults": '{"drop_stream_after": 5}'})

A plan in the `X-Offline-Faults` header (JSON object) overrides the fields it sets
for that one request. Fields:
- `latency_ms`: added to every request, any endpoint.
- `ttft_ms`: before the first streamed token.
- `token_delay_ms`: between streamed tokens. A whole (non-streamed) chat or FIM answer
  arrives when its stream would have ended: `ttft_ms + token_delay_ms × (tokens - 1)`.
  `faults.DEMO_PACE` (100 ms, then 4 ms a token) is the pace of the server the
  extension starts; `set_faults(None)` clears it with the rest.
- `rate_limit_rps`: requests per second per API key (sliding 1 s window); excess
  requests get 429 `{"object":"error","message":"Rate limit exceeded",
  "type":"rate_limited","param":null,"code":"1300"}` with `Retry-After` (whole seconds, >= 1) and
  `retry-after-ms` (exact; the SDK's backoff prefers it, so it waits just enough).
- `error_status` with `error_rate` (probability) and/or `error_on_nth` (1-based
  request numbers, counted per path since the plan was set; a header plan counts
  the requests carrying the same header text). `error_status` alone fails every
  request; a rate or nth alone uses 500.
- `drop_stream_after`: a stream sends this many tokens, then the connection is cut
  mid-body without `[DONE]` (the SDK raises a protocol error while iterating).
- `bad_json_rate`: a json_object/json_schema answer comes back truncated, not JSON.
- `batch_line_error_rate`: a batch line answers status 500 (goes to the error file).
- `answer_tokens`: text answers are exactly this many completion tokens, at most
  65,536 (still cut by `max_tokens`).
- `seed`: seeds the random draws; the same plan faults the same requests in order.

Rate limit, latency and errors apply to every endpoint, before the request is read.
"""

from .faults import FaultPlan
from .server import OfflineServer

__all__ = ["FaultPlan", "OfflineServer"]
