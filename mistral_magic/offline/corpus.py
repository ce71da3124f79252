"""The web the offline `web_search` tool searches: a few hundred short pages, shipped with the server.

`corpus.json` holds 64 topics of data science (a summary, a practical note, a pitfall, an
origin and a related topic each, written for these demos); `pages()` makes five pages of
each: an overview, in practice, pitfalls, history, and a comparison with the related
topic, 320 pages in all. Every page says it is an offline page, and its address is under
`HOST`, a ``.invalid`` domain that no resolver answers (RFC 2606): a citation is a real
http(s) link that leads nowhere, and the server never fetches anything.

`search(query, k)` ranks pages by the cosine of their offline embeddings (`embed.vector`)
with the query's, ties broken by address: the same query always finds the same pages.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from importlib import resources

HOST = "https://search.offline.invalid"
DIMENSIONS = 256
NOTE = "An offline page of mistral_magic's demo corpus, not fetched from the web."
PROPER = frozenset({"Jupyter", "Bayesian", "Matplotlib"})
_lock = threading.Lock()


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    description: str  # the page's first sentence: what a search result shows
    text: str

    def snippet(self, limit: int = 240) -> str:
        return self.description if len(self.description) <= limit else self.description[:limit - 1] + "…"


@functools.cache
def topics() -> tuple[dict, ...]:
    text = resources.files(__package__).joinpath("corpus.json").read_text("utf-8")
    return tuple(json.loads(text)["topics"])


@functools.cache
def pages() -> tuple[Page, ...]:
    """Every page of the corpus, five per topic, in a fixed order."""
    by_slug = {t["slug"]: t for t in topics()}
    made = []
    for t in topics():
        related = by_slug[t["related"]]
        low = _in_sentence(t["title"])
        kinds = (
            ("overview", f"{t['title']}: an overview", [t["summary"], t["practice"]]),
            ("in-practice", f"{t['title']} in practice", [t["practice"], t["summary"]]),
            ("pitfalls", f"Common pitfalls with {low}", [t["pitfall"], t["practice"]]),
            ("history", f"A short history of {low}", [t["origin"], t["summary"]]),
            ("compared", f"{t['title']} compared with {_in_sentence(related['title'])}",
             [f"{t['summary']} By contrast, {_in_sentence(related['summary'])}",
              t["pitfall"]]),
        )
        for kind, title, sentences in kinds:
            made.append(Page(url=f"{HOST}/{t['slug']}/{kind}", title=title, description=sentences[0],
                             text=" ".join([*sentences, NOTE])))
    return tuple(made)


def _in_sentence(text: str) -> str:
    """A title or sentence continued inside a sentence: its first letter lower-cased, unless
    its first word is a name (NumPy, SQL, Jupyter)."""
    first = text.split(" ", 1)[0]
    if first[1:] != first[1:].lower() or first in PROPER:
        return text
    return text[:1].lower() + text[1:]


def _vectors():
    import numpy as np

    from . import embed

    with _lock:
        return np.array([embed.vector(f"{p.title}. {p.text}", DIMENSIONS, salt="corpus") for p in pages()])


_matrix = functools.cache(_vectors)


def search(query: str, k: int = 3) -> list[Page]:
    """The `k` pages nearest to `query` (never an empty list for a corpus this size)."""
    import numpy as np

    from . import embed

    found = pages()
    scores = _matrix() @ np.array(embed.vector(query, DIMENSIONS, salt="corpus"))
    order = sorted(range(len(found)), key=lambda i: (-round(float(scores[i]), 9), found[i].url))
    return [found[i] for i in order[:k]]
