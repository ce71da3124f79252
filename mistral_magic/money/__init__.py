"""Tokens and money: counts, the vocabulary, prices and the ledger.

`tokens` (counts equal to mistral-common's), `vocab` (Tekken's vocabulary on tiktoken),
`prices` (the price table, ``prices.json`` with its sources and dates, and overrides) and
`usage` (``Ledger`` and ``CallRecord``: one row per call).

A lower layer: it uses only `errors`, so the offline server can count with `tokens` too.
"""
