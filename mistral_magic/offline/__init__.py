"""A local server that speaks Mistral's API, so the official SDK works with no key and no network.

    from mistral_magic.offline import OfflineServer, FaultPlan
    from mistralai.client import Mistral

    with OfflineServer() as server:                # free port on 127.0.0.1, random key
        client = Mistral(api_key=server.api_key, server_url=server.url)
        client.chat.complete(model="mistral-small-latest",
                             messages=[{"role": "user", "content": "Hello"}])

Or standalone: `python -m mistral_magic.offline --port 8765` prints its URL and key.

What it serves (everything it makes up is labelled as offline output):
- `GET /v1/models`, `GET /v1/models/{id}`: every model id the spec, the SDK's examples
  and Mistral's docs use (large, medium, small, ministral, magistral, devstral,
  codestral, pixtral, voxtral, embed, moderation, OCR; dated ids and aliases), with the
  docs' capabilities, context lengths, release dates and, for deprecated models, their
  retirement date and successor (`catalogue.py`). A model it lacks gets 400
  `invalid_model` (code 1500) saying it is not in the offline catalogue (a retired one:
  when, and what replaced it; a misspelt one: the nearest id it has); a model without the
  capability an endpoint needs says which models have it.
- `POST /v1/chat/completions`, whole or streamed (SSE): Markdown answers that quote the
  prompt and refer back to the previous user turn, a Python code block when code is
  asked for; `max_tokens`, `stop`, `random_seed`, assistant `prefix`, `n` (streamed
  too, choices side by side; the spec sets no bound, the server stops at 256);
  `response_format` json_schema (values filled from the prompt and its documents,
  `pattern` honoured; a re-ask takes them from the question, not the feedback), and
  json_object, or a text prompt that asks for JSON (`jsonask.py`): the keys, example or
  JSON Schema the prompt gives, a list when it asks for one.
  Tools (`tools.py`, `arguments.py`): every `tool_choice`; only the tools the message
  is about (name, parameters and description against its words, clause by clause),
  none when nothing fits; arguments from the user's text that fit the whole parameter
  schema (`$defs`, nested objects, lists of objects: the structured-answer generator),
  one call per value when the text gives several and `parallel_tool_calls` allows; a
  question instead of a call when a required value is missing; after tool results the
  answer quotes them, and a forced choice calls a tool not yet called (an agent's
  output tool first). Tool-call ids are checked as the hosted API checks them (9
  characters of [a-zA-Z0-9], every call answered once): 400 with its messages.
  Reasoning (`reasoning.py`): `reasoning_effort` "high" on mistral-small/medium-3-5,
  and Magistral always, answer with a `ThinkChunk` then a `TextChunk` (streamed as the
  hosted API streams them), thinking counted as completion tokens; the efforts and
  `prompt_mode` a model does not take are refused with the hosted API's 400s.
  Pictures and documents (`inputs.py`): `image_url` chunks are named (count, size,
  format; an http URL is described, not fetched) and counted as the hosted API counts
  them; `document_url` and `file` chunks are read (a PDF's text layer with pypdf, DOCX,
  PPTX, text) and quoted, their text counted in the prompt. Models without vision or
  document reading refuse them.
  Usage is counted with `mistral_magic.money.tokens`, so client estimates match exactly.
  Model calls carry the hosted API's rate-limit headers (`quota.py`), counting down.
- Sampling: the same request with the same `random_seed` gets the same answer, and
  temperature 0 ignores the seed. Without a seed answers vary as the hosted API's do:
  the k-th repeat of a request gets the k-th answer, so a fresh server replays a
  notebook run exactly (reproducible per server `seed` and request count).
- `POST /v1/ocr` (`ocr.py`): a document's real text layer as Mistral OCR's pages
  (headings, tables inline or as `tbl-N`, images with boxes and JPEG data URLs, links,
  header/footer extraction, blocks on OCR 4, confidence scores, annotations filled by
  schema, `pages` as a list or "0,2-4"); pictures and pages without text get a
  placeholder saying the offline server cannot read text in images.
- `POST /v1/audio/transcriptions` (`audio.py`, streamed or not), `POST /v1/audio/speech` and
  `GET /v1/audio/voices[/{id}[/sample]]` (`speech.py`): a recording's real length (decoded:
  WAV, MP3, FLAC, OGG), a transcript from a sidecar `.txt` found by the audio's content
  (`OfflineServer(transcripts=FOLDER)`, default the working folder) or labelled filler;
  speech as a real audio file of plausible length; six preset stand-in voices. Recordings
  in chat (`input_audio`) are measured, counted and reported as `prompt_audio_seconds`.
- `POST /v1/moderations`, `/v1/chat/moderations`, `/v1/classifications`,
  `/v1/chat/classifications` (`moderation.py`): the spec's categories scored by keyword
  rules, high for obviously violent, hateful, self-harm, dangerous, criminal, sexual,
  jailbreaking or personal-data text and low otherwise; `offline-` ids; no `usage`
  (the spec's responses have none).
- `POST /v1/fim/completions` (codestral models), `POST /v1/embeddings` (`embed.py`:
  feature hashing over words, character n-grams and word pairs, so paraphrases land
  closer than unrelated texts and near-duplicates above 0.9; Codestral Embed's
  `output_dimension` are nested prefixes, and its `output_dtype`s; `encoding_format`
  base64 gives the values' little-endian bytes, float32 for floats).
- `/v1/files` (upload, list, get, content, delete, and `GET /v1/files/{id}/url`: a
  signed URL that downloads without the key until it expires, and that chat and OCR
  read from the store) and `/v1/batch/jobs` (create from files or inline `requests`
  for chat, FIM, embeddings, moderations, classifications and OCR; list, get with
  `?inline=true` for `outputs`, cancel, delete); small jobs finish on their own within
  about two seconds, a job of 100,000 lines (the hosted API's limit) as fast as its
  answers are computed (about a millisecond a chat line), reading and writing its
  files a line at a time; see `batch.py` for the line format.
- Conversations, agents and libraries (`conversations.py`, `agents.py`, `libraries.py`,
  routed by `agent_routes.py`): `/v1/conversations` start, append, restart (whole or
  streamed as the spec's events, no `[DONE]`), list, get, delete, history, messages;
  `/v1/agents` create, update (a new version), versions, switch version, aliases, list;
  `/v1/libraries` and their documents (upload, processing status that moves to done, text,
  signed URLs, reprocess). Mistral's built-in tools run offline (`builtins.py`):
  `web_search` searches a corpus of 320 short data-science pages shipped with the server
  (`corpus.py`, addresses under a `.invalid` domain) and cites them as `tool_reference`
  chunks, `document_library` searches a library's processed text with the offline
  embeddings, `image_generation` makes a labelled PNG (a `tool_file`, downloaded from
  `/v1/files/{id}/content`), `code_interpreter` shows the code and says it was not run.
  Only the models the docs give built-in tools take them (400 naming those that do).
- Errors as the hosted API sends them: 401 `{"detail": "Unauthorized"}` without the
  right bearer key, 422 `detail[]` for invalid bodies, 400 `invalid_model` (code
  1500) for unknown models, the API's input limits (prompt plus `max_tokens` within
  the context; embeddings: 512 inputs, 16,384 tokens). Every other operation of the
  spec (observability, connectors, changing voices, ...; `spec_paths.txt`) answers 404 in
  the error shape, saying it is not available offline; a path in no spec is a plain 404.
  The server has no network: it never fetches a URL other than its own signed URLs.
- Limits against abuse (`limits.py`): 413 past 10 MiB of JSON or a 512 MiB upload
  (the hosted API's per-file limit; 2 GiB of uploads in all, files past 1 MiB kept on
  disk, not in memory), 422 for JSON nested past 64 levels or holding a lone
  surrogate, at most 16 choices, structured answers cut at 64 KiB (`finish_reason:
  length`, as a model out of tokens), documents of at most 1,000 pages, pictures that
  claim more pixels than Pillow decodes are refused. Work runs in a thread pool, off
  the event loop.

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
- `shuffle_embeddings`: an embeddings response lists its vectors out of order, each with
  its `index` (clients must read the index, not the position).
- `answer_tokens`: text answers are exactly this many completion tokens, at most
  65,536 (still cut by `max_tokens`).
- `seed`: seeds the random draws; the same plan faults the same requests in order.

Rate limit, latency and errors apply to every endpoint, before the request is read.
"""

from .faults import FaultPlan
from .server import OfflineServer

__all__ = ["FaultPlan", "OfflineServer"]
