"""The terminal renderer's parts: where streamed Markdown blocks end, outside text made inert,
tables at a given width. The whole in a real pseudo-terminal is `test_terminal.py`."""

from __future__ import annotations

import io
import sys

import pandas as pd

from mistral_magic.show import terminal


def test_finished_blocks_end_at_blank_lines_outside_code_fences():
    assert terminal.finished_blocks("One paragraph, still coming") == 0
    assert terminal.finished_blocks("Done.\n\nNext") == len("Done.\n\n")
    text = "Intro\n\n```python\nx = 1\n\ny = 2\n"
    assert terminal.finished_blocks(text) == len("Intro\n\n")  # the fence is still open
    closed = text + "```\n\nAfter"
    assert terminal.finished_blocks(closed) == len(closed) - len("After")
    assert terminal.finished_blocks("~~~~\n```\n\n~~~~\n\nx") == len("~~~~\n```\n\n~~~~\n\n")


def test_outside_text_loses_its_terminal_controls():
    hostile = "a\x1b]52;c;ZXZpbA==\x07b\x1b[2J\x9b31mc\rd\n\te"
    assert terminal.clean(hostile) == "a]52;c;ZXZpbA==b[2J31mcd\n\te"


def test_the_rich_writer_prints_no_escape_a_model_wrote(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    writer = terminal.RichWriter("markdown")
    parts = ["# Title \x1b]0;owned\x07\n\n", "Some **bold** text\x1b[2J.\n\n", "- one\n- two"]
    for n in range(1, len(parts) + 1):
        writer.feed(parts[:n], [])
    writer.finish("".join(parts), "model · 1 in / 2 out · $0.01")
    written = out.getvalue()
    assert "\x1b]0;" not in written and "\x1b[2J" not in written and "\x07" not in written
    assert "Title" in written and "bold" in written and "**" not in written
    assert written.rstrip().endswith("model · 1 in / 2 out · $0.01")


def test_tables_keep_the_columns_that_matter_and_every_row_of_a_short_one():
    frame = pd.DataFrame({"id": [f"model-{i}" for i in range(62)], "notes": ["x" * 300] * 62,
                          "price": [0.00009615] * 62})
    drawn = terminal.table_text(frame, ["id", "price"], width=100)
    lines = drawn.splitlines()
    assert sum(line.startswith("model-") for line in lines) == 62
    assert all(len(line) <= 100 for line in lines)
    assert "0.00009615" in drawn and "e-05" not in drawn
    assert lines[-1] == "1 more column: notes"
    long = pd.DataFrame({"n": range(1000)})
    drawn = terminal.table_text(long, width=100)
    assert "1,000 rows" in drawn and "…" in drawn and len(drawn.splitlines()) < 40
