"""The one call path and what it needs: send → stream → account → record.

`path` (``Call`` and ``CallPath``: every chat-shaped call, from its reservation to its
ledger row), `backend` (where requests go, keys, the SDK client, the background loop),
`budget` (``budget_usd`` as a hard cap), `cache` (the response cache's rules), `limiter`
(rate limits and 429 waits), `prompt_cache` (a chat's ``prompt_cache_key`` and the cached
tokens the server reports), `events` (typed stream events), `estimates` (what a call
may cost before it is sent), `uses` (tools priced per use under a budget), `capabilities`
(which models the backend has and what each can do, checked before anything is sent),
`audio` (a transcription and a speech, priced per minute and per character) and `sent` (what
each call sent, for ``%mistral sent``).

It may use `structured` (re-asks), `inputs` (what goes with a prompt), `show`, `money`,
`store`, `chat`, `errors` and starts the
`offline` server; it knows nothing of the notebook, rows, tools or widgets.
"""
