"""The row engine and every row method of ``df.mistral``.

`accessor` (the ``df.mistral`` accessor), `job` (``RowJob``: what one row sends and how its
answer becomes columns), `engine` (concurrency, limiter, budget, resume, progress,
interrupts, ``_error``), `batch` and `batchrun` (the Batch API, and a job through it),
`packed` (many texts a request), `vectors` (embed, search, dedup), `labels` (classify,
filter, moderate), `ocr` (``%mistral ocr`` and ``df.mistral.ocr``), `transcribe`
(``df.mistral.transcribe``), `library` (``df.mistral.to_library``), `preview` (``preview=n``
on a row method), and the operators over several rows at once, run as steps (`steps`):
`join`, `agg` and `topk`.

It may use the session (`core`) and every layer below it; only the notebook surface uses it.
"""
