"""The re-ask loop: an answer that does not parse is asked again, with what was wrong.

One loop for every structured answer (a ``--json`` or ``--schema`` cell, each row of
an extraction), bounded by ``MistralMagics.reasks`` (1 by default), in the manner of
pydantic-ai's ``ModelRetry``: the invalid answer and the validation error go back to
the model as the next turn of the same request. The caller sends; the loop decides::

    loop = Reasks(request, parse, limit=1)
    retry = request
    while retry is not None:
        answer = send(retry)           # in the kernel's thread or on the background loop
        retry = loop.after(answer.text)  # None once it parsed (loop.value)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import StructuredOutputError
from .frames import reask_request


class Reasks:
    """Parse answers to `request`; an answer that does not parse is re-asked, `limit` times at most."""

    def __init__(self, request: dict, parse: Callable[[str], Any], limit: int):
        self.request = request
        self.parse = parse
        self.limit = max(0, int(limit))
        self.asked = 0
        self.value: Any = None
        self.error: StructuredOutputError | None = None  # why the last answer was re-asked

    def after(self, text: str) -> dict | None:
        """The request to send next: None when `text` parsed (its value is `value`).

        Raises the `StructuredOutputError` of the last answer once `limit` re-asks did not help.
        """
        try:
            self.value = self.parse(text)
        except StructuredOutputError as exc:
            if self.asked >= self.limit:
                raise
            self.asked += 1
            self.error = exc
            self.request = reask_request(self.request, text, exc)
            return self.request
        return None

    @property
    def said(self) -> str:
        """'after one re-ask' (or 'after 2 re-asks'), for messages about the last answer."""
        return "after one re-ask" if self.asked == 1 else f"after {self.asked} re-asks"
