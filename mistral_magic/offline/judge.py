"""Judgements about labelled records: the offline model's answer to "do these match?" and
"which fits better?", by how much their words overlap.

A user message that lays out two or more records as lines ``Record A: ...``,
``Record B (name): ...`` (what the values are in brackets; the question above them), under a JSON schema of one field, is
answered here instead of by the generic schema filler:

- a boolean field, two records: true when the records' texts are alike (the cosine of
  their offline embeddings, `embed.vector`, reaches `SAME`), as for a semantic join's
  "does A describe the same product as B?";
- a field whose ``enum`` holds the records' letters: the letter of the record closest to
  the question (ties go to the record whose text sorts first by its digest, so the
  answer does not depend on the order the records come in), as for a ranking's
  "which of these is more urgent?".

Like every offline answer it is deterministic and only as good as shared words are: a
keyword model, not a language model.
"""

from __future__ import annotations

import hashlib
import re

from . import embed

SAME = 0.5  # near-duplicates score above 0.9, the same thing in other words about 0.55-0.75
DIMS = 256
_RECORD = re.compile(r"^Record ([A-Z])(?: \([^)\n]*\))?:[ \t]*", re.M)  # "Record A (title): ..."


def records(text: str) -> tuple[str, dict[str, str]]:
    """The question (the text above the first record) and each record's text by its letter."""
    marks = list(_RECORD.finditer(text))
    found = {}
    for k, mark in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        found[mark.group(1)] = text[mark.end():end].strip()
    return (text[:marks[0].start()].strip() if marks else text), found


def answer(schema: dict, text: str) -> dict | None:
    """The judgement as the schema's one field, or None when this is no such question."""
    question, found = records(text)
    props = schema.get("properties") if isinstance(schema, dict) else None
    if len(found) < 2 or not isinstance(props, dict) or len(props) != 1:
        return None
    (name, field), = props.items()
    if not isinstance(field, dict):
        return None
    if field.get("type") == "boolean" and len(found) == 2:
        first, second = found.values()
        return {name: similarity(first, second) >= SAME}
    options = field.get("enum")
    if isinstance(options, list) and options and set(options) <= set(found):
        return {name: max(options, key=lambda letter: _rank(question, found[letter]))}
    return None


def similarity(a: str, b: str) -> float:
    """The cosine of two texts' offline embeddings."""
    import numpy as np

    return float(np.dot(embed.vector(a, DIMS), embed.vector(b, DIMS)))


def _rank(question: str, text: str) -> tuple[float, str]:
    # A tie is broken by the text itself, never by its place in the message.
    return round(similarity(question, text), 6), hashlib.sha256(text.encode()).hexdigest()

