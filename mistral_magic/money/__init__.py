"""Tokens and money: counts, the vocabulary, prices, the ledger and what models can do.

`tokens` (counts equal to mistral-common's), `vocab` (Tekken's vocabulary on tiktoken),
`prices` (the price table, ``prices.json`` with its sources and dates, and overrides),
`usage` (``Ledger`` and ``CallRecord``: one row per call) and `capabilities` (vision,
documents, tools, reasoning, from a model's card).

A lower layer: it uses only `errors`, so the offline server can count with `tokens` too.
"""
