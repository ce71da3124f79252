"""What an OCR page holds beyond its Markdown, and how a page is shown with it.

The current OCR models return more than Markdown; `PageOptions` asks for it (the options of
`%mistral ocr` and `df.mistral.ocr`):

- ``blocks`` (``--blocks``): the page's layout blocks (paragraphs, titles, lists, tables,
  equations, captions, signatures, headers, footers, images) with their boxes, as a
  DataFrame ``page, type, x0, y0, x1, y1, content`` (pixels of the page image, from the
  top left; `blocks_frame`). Blocks need OCR 4 or newer (``mistral-ocr-latest``).
- ``confidence`` (``--confidence word|block|page``): the model's confidence, 0 to 1, at
  that granularity (`scores_frame`: a word's text and ``start`` in the page's Markdown; a
  block's average, lowest and type confidence, also as columns of the blocks frame; a
  page's average and lowest). Words under `LOW_CONFIDENCE` are marked in the rendered page
  (``<mark>``, through `show.render`; ⟦ ⟧ in text) so a reviewer sees them; with block or
  page scores the page says which fall under it.
- ``tables`` (``--tables html|markdown``): tables in that format, out of the Markdown (a
  ``[tbl-0.html](tbl-0.html)`` link there) and put back in place here (`page_text`); HTML
  tables reach the page only through the sanitiser of `show.render`, as any outside HTML.
- ``header`` / ``footer`` False (``--no-header``, ``--no-footer``): running headers and
  footers are taken out of the page text (the API's ``extract_header``/``extract_footer``;
  OCR 2512 and newer).

A feature a known older model lacks is refused in one line before anything is sent.
Scores and positions are data from the server: a word whose ``start_index`` does not point
at its text in the page is not marked, and text between the mark characters is never
trusted to carry marks of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from ..errors import ConfigError

LOW_CONFIDENCE = 0.8  # a word (block, page) scored under this is shown for review
GRANULARITIES = ("word", "block", "page")
TABLE_FORMATS = ("html", "markdown")
# Canonical ids of models that lack a feature (docs: blocks need OCR 4; table formats,
# headers and footers OCR 2512); unknown models (self-hosted) are not refused.
_NO_BLOCKS = frozenset({"mistral-ocr-2505", "mistral-ocr-2512"})
_NO_LAYOUT = frozenset({"mistral-ocr-2505"})
BLOCK_COLUMNS = ["page", "type", "x0", "y0", "x1", "y1", "content"]
SCORE_COLUMNS = ["confidence", "min_confidence", "type_confidence"]
_TABLE_LINK = re.compile(r"\ue000?\[(tbl-\d+\.(?:md|html))\]\(\1\)\ue001?")
# Words that are Markdown's own syntax: marking them would break the page's structure.
_SYNTAX = re.compile(r"#{1,6}|[-*+>]|\d{1,3}[.)]|\|+|\|?(:?-{2,}:?\|)+:?-*:?\|?")
_OPEN, _CLOSE = "\ue000", "\ue001"


@dataclass(frozen=True)
class PageOptions:
    """What an OCR request asks for beyond the pages' Markdown (see the module's doc)."""

    blocks: bool = False
    confidence: str | None = None
    tables: str | None = None
    header: bool = True
    footer: bool = True

    def __post_init__(self) -> None:
        if self.confidence is not None and self.confidence not in GRANULARITIES:
            raise ConfigError(f"confidence={self.confidence!r}: give word, block or page")
        if self.tables is not None and self.tables not in TABLE_FORMATS:
            raise ConfigError(f"tables={self.tables!r}: give html or markdown")

    def fields(self) -> dict:
        """The request's fields for what is asked (nothing when nothing is)."""
        found: dict[str, Any] = {}
        if self.blocks:
            found["include_blocks"] = True
        if self.confidence:
            found["confidence_scores_granularity"] = self.confidence
        if self.tables:
            found["table_format"] = self.tables
        if not self.header:
            found["extract_header"] = True
        if not self.footer:
            found["extract_footer"] = True
        return found

    def check(self, model: str, prices) -> None:
        """Refuse (`ConfigError`, one line) what a known older model does not return."""
        canonical = prices.resolve(model) or model
        if self.blocks and canonical in _NO_BLOCKS:
            raise ConfigError(f"{model} returns no blocks: blocks need OCR 4 or newer; use -m "
                              "mistral-ocr-latest")
        layout = [name for name, asked in (("--tables html|markdown", self.tables),
                                            ("--no-header", not self.header),
                                            ("--no-footer", not self.footer)) if asked]
        if layout and canonical in _NO_LAYOUT:
            raise ConfigError(f"{model} does not take {', '.join(layout)} (OCR 2512 and newer "
                              "do); use -m mistral-ocr-latest")


# -- frames -------------------------------------------------------------------------------------


def block_rows(pages: list[dict], scored: bool = False) -> list[dict]:
    """Every page's blocks in reading order, as plain records (`blocks_frame`'s rows)."""
    rows = []
    for page in pages:
        for block in page.get("blocks") or []:
            row = {"page": page.get("index"), "type": block.get("type"),
                   "x0": block.get("top_left_x"), "y0": block.get("top_left_y"),
                   "x1": block.get("bottom_right_x"), "y1": block.get("bottom_right_y"),
                   "content": block.get("content")}
            if scored:
                scores = block.get("confidence_scores") or {}
                row.update(confidence=scores.get("average_content_confidence_score"),
                           min_confidence=scores.get("minimum_content_confidence_score"),
                           type_confidence=scores.get("block_type_confidence_score"))
            rows.append(row)
    return rows


def blocks_frame(pages: list[dict], scored: bool = False):
    """Every page's blocks in reading order: page, type, x0, y0, x1, y1, content (and, with
    block scores, confidence, min_confidence and type_confidence)."""
    return blocks_frame_of(block_rows(pages, scored), scored)


def scores_frame(pages: list[dict], granularity: str | None):
    """The confidence scores at `granularity`: words (page, text, confidence, start), blocks
    (`blocks_frame` with scores) or pages (page, confidence, min_confidence)."""
    import pandas as pd

    if granularity is None:
        raise ConfigError("no confidence scores were asked for; read with --confidence "
                          "word|block|page (confidence=...)")
    if granularity == "block":
        return blocks_frame(pages, scored=True)
    if granularity == "page":
        rows = [{"page": p.get("index"),
                 "confidence": (p.get("confidence_scores") or {}).get("average_page_confidence_score"),
                 "min_confidence": (p.get("confidence_scores") or {}).get("minimum_page_confidence_score")}
                for p in pages]
        return pd.DataFrame(rows, columns=["page", "confidence", "min_confidence"]).astype(
            {"page": "Int64", "confidence": "float64", "min_confidence": "float64"})
    # Each word without the space before it, and where it starts in its page's Markdown.
    rows = [{"page": p.get("index"), "text": w["text"].strip(), "confidence": w["confidence"],
             "start": w["start_index"] + len(w["text"]) - len(w["text"].lstrip())}
            for p in pages for w in _words(p) if w["text"].strip()]
    return pd.DataFrame(rows, columns=["page", "text", "confidence", "start"]).astype(
        {"page": "Int64", "confidence": "float64", "start": "Int64"})


def row_values(pages: list[dict], options: PageOptions) -> dict:
    """What a row of `df.mistral.ocr` keeps beyond text and pages (JSON, for resuming)."""
    found: dict[str, Any] = {}
    if options.blocks:
        found["blocks"] = block_rows(pages, options.confidence == "block")
    if options.confidence:
        scored = [p.get("confidence_scores") or {} for p in pages]
        averages = [s["average_page_confidence_score"] for s in scored
                    if s.get("average_page_confidence_score") is not None]
        lowest = [s["minimum_page_confidence_score"] for s in scored
                  if s.get("minimum_page_confidence_score") is not None]
        found["confidence"] = sum(averages) / len(averages) if averages else None
        found["min_confidence"] = min(lowest) if lowest else None
        if options.confidence == "word":
            found["low_words"] = [w["text"].strip() for p in pages for w in _words(p)
                                  if w["text"].strip() and w["confidence"] < LOW_CONFIDENCE]
    return found


def row_columns(records: list, index, options: PageOptions) -> dict:
    """The columns `row_values` makes, aligned to the rows (None where a row failed)."""
    import pandas as pd

    columns: dict[str, Any] = {}

    def column(name: str, dtype, convert=lambda v: v):
        columns[name] = pd.Series([convert(r[name]) if r else None for r in records], index=index,
                                  dtype=dtype)

    if options.blocks:
        column("blocks", object, lambda rows: blocks_frame_of(rows, options.confidence == "block"))
    if options.confidence:
        column("confidence", "Float64")
        column("min_confidence", "Float64")
        if options.confidence == "word":
            column("low_words", object)
    return columns


def blocks_frame_of(rows: list[dict], scored: bool):
    """A row's blocks (records, as kept) as the DataFrame `blocks_frame` gives."""
    import pandas as pd

    columns = BLOCK_COLUMNS + (SCORE_COLUMNS if scored else [])
    frame = pd.DataFrame(rows, columns=columns)
    types = dict.fromkeys(["page", "x0", "y0", "x1", "y1"], "Int64")
    return frame.astype({**types, **dict.fromkeys(columns[len(BLOCK_COLUMNS):], "float64")})


# -- tables ---------------------------------------------------------------------------------------


def page_text(page: dict) -> str:
    """A page's Markdown with the tables that `--tables` took out of it put back in place."""
    tables = {t.get("id"): t.get("content") or "" for t in page.get("tables") or []}
    return _TABLE_LINK.sub(lambda m: tables.get(m.group(1), m.group(0)), page.get("markdown") or "")


def table_frames(pages: list[dict]) -> list:
    """The pages' tables as DataFrames in reading order (Markdown or HTML, as they came)."""
    found = []
    for page in pages:
        tables = {t.get("id"): t for t in page.get("tables") or []}
        text, at = page.get("markdown") or "", 0
        for match in _TABLE_LINK.finditer(text):
            found += markdown_tables(text[at:match.start()])
            table = tables.get(match.group(1)) or {}
            content = table.get("content") or ""
            found += [_frame(_html_rows(content))] if table.get("format") == "html" else \
                markdown_tables(content)
            at = match.end()
        found += markdown_tables(text[at:])
    return [f for f in found if f is not None]


def markdown_tables(text: str) -> list:
    """The pipe tables in Markdown text as DataFrames (numbers as numbers)."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.strip().startswith("|"):
            block.append(line.strip())
            continue
        if len(block) >= 2 and re.fullmatch(r"\|?(\s*:?-{2,}:?\s*\|)+\s*:?-*:?\s*\|?", block[1]):
            found.append(_frame([_cells(row) for row in block[:1] + block[2:]]))
        block = []
    return found


def _frame(rows: list[list[str]]):
    """A header row and its body as a DataFrame, numbers as numbers; None without a header."""
    import pandas as pd

    if not rows:
        return None
    header, *body = rows
    width = len(header)
    frame = pd.DataFrame([(r + [""] * width)[:width] for r in body], columns=_unique(header))
    for column in frame.columns:
        try:
            frame[column] = pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            pass
    return frame


def _cells(row: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", row.strip().strip("|") if row.strip() != "|" else "")
    return [p.strip().replace("\\|", "|") for p in parts]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        name = name or "column"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


class _Cells(HTMLParser):
    """The text of each row's cells in an HTML table (nothing else of the markup is kept)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _html_rows(markup: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(markup)
    parser.close()
    return [row for row in parser.rows if row]


# -- a page shown ----------------------------------------------------------------------------------


def _words(page: dict) -> list[dict]:
    """The page's word scores that point at their text in its Markdown (others are dropped)."""
    markdown = page.get("markdown") or ""
    kept = []
    for word in (page.get("confidence_scores") or {}).get("word_confidence_scores") or []:
        text, start, score = word.get("text"), word.get("start_index"), word.get("confidence")
        if (isinstance(text, str) and isinstance(start, int) and not isinstance(start, bool)
                and isinstance(score, (int, float)) and 0 <= start
                and markdown[start:start + len(text)] == text):
            kept.append({"text": text, "confidence": float(score), "start_index": start})
    return kept


def marked(page: dict, low: float = LOW_CONFIDENCE, marks: tuple[str, str] = (_OPEN, _CLOSE)) -> str:
    """The page's Markdown with each word scored under `low` between `marks` (the render's
    mark characters by default); the page's own mark characters are dropped first."""
    markdown = page.get("markdown") or ""
    out, at = [], 0
    for word in sorted(_words(page), key=lambda w: w["start_index"]):
        body = word["text"].lstrip()
        start = word["start_index"] + len(word["text"]) - len(body)
        if word["confidence"] >= low or not body or start < at or _SYNTAX.fullmatch(body):
            continue
        out += [_plain(markdown[at:start]), marks[0], _plain(body), marks[1]]
        at = start + len(body)
    out.append(_plain(markdown[at:]))
    return "".join(out)


def page_plain(page: dict) -> str:
    """A page as text: its tables in place, low-confidence words between ⟦ and ⟧."""
    tables = {t.get("id"): t.get("content") or "" for t in page.get("tables") or []}
    return _TABLE_LINK.sub(lambda m: _plain(tables.get(m.group(1), m.group(0))),
                           marked(page, marks=("⟦", "⟧")))


def _plain(text: str) -> str:
    return text.replace(_OPEN, "").replace(_CLOSE, "")


def page_parts(page: dict, options: PageOptions, low: float = LOW_CONFIDENCE) -> list[tuple[str, str]]:
    """One page as (kind, text) pieces for `show.render.document`: its Markdown (low words
    marked), with its HTML tables as sanitised HTML and its Markdown tables in place."""
    text = marked(page, low) if options.confidence == "word" else _plain(page.get("markdown") or "")
    tables = {t.get("id"): t for t in page.get("tables") or []}
    parts: list[tuple[str, str]] = []
    at = 0
    for match in _TABLE_LINK.finditer(text):
        table = tables.get(match.group(1))
        if table is None:
            continue
        kind = "html" if table.get("format") == "html" else "markdown"
        content = table.get("content") or ""
        parts += [("markdown", text[at:match.start()]),
                  (kind, content if kind == "html" else _plain(content))]
        at = match.end()
    parts.append(("markdown", text[at:]))
    return [(kind, piece) for kind, piece in parts if piece.strip()]


def review_note(page: dict, options: PageOptions, low: float = LOW_CONFIDENCE) -> str | None:
    """A line saying what a reviewer should look at on this page, or None."""
    if options.confidence == "word":
        count = sum(1 for w in _words(page) if w["text"].strip() and w["confidence"] < low)
        return (f"{count} word{'' if count == 1 else 's'} under {low:.0%} confidence, marked"
                if count else None)
    if options.confidence == "block":
        shaky = [(b.get("type"), (b.get("confidence_scores") or {}).get("average_content_confidence_score"))
                 for b in page.get("blocks") or []]
        shaky = [(kind, score) for kind, score in shaky if score is not None and score < low]
        return (f"blocks under {low:.0%} confidence: "
                + ", ".join(f"{kind} ({score:.2f})" for kind, score in shaky)) if shaky else None
    if options.confidence == "page":
        scores = page.get("confidence_scores") or {}
        average, lowest = (scores.get("average_page_confidence_score"),
                           scores.get("minimum_page_confidence_score"))
        if average is None:
            return None
        return f"confidence {average:.2f} (lowest {lowest:.2f})" + (" — check this page" if average < low else "")
    return None
