"""Answers as data: schemas, the short DSL, parsing into typed frames, and re-asks.

`schema` (``SchemaSpec``: a ``--schema`` as a strict JSON Schema), `dsl` (the short
``"name, age int"`` form), `frames` (answers checked against a schema, as typed records and
DataFrames) and `reask` (asking again with what was wrong, ``MistralMagics.reasks`` times).

It uses only `errors`: it never sends; the call path and the row engine use it.
"""
