"""Terminal IPython at 100 columns, in a pseudo-terminal, read as the user reads it.

IPython runs in a pty (pexpect) 100 columns wide; what it writes is replayed into a
terminal emulator (pyte) so that rich's in-place redraws end as the screen shows them.
Answers must read as rendered Markdown wrapped at words (no `## ` or `**` left, no word cut
by the terminal's own wrapping), tables must show the columns that matter and every row of
a short table, and the text versions of the widgets must say why in one line.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = 100
PROMPT = re.compile(r"In \[(\d+)\]: ")


class Terminal:
    """IPython in a 100-column pty; `run(cell)` returns the screen lines that cell wrote."""

    def __init__(self, cwd: Path):
        env = {k: v for k, v in os.environ.items()
               if k not in ("MISTRAL_API_KEY", "MISTRAL_SERVER_KEY", "COLUMNS", "LINES")}
        env.update(PYTHONPATH=str(ROOT), IPYTHONDIR=str(cwd / "ipython"), TERM="xterm-256color")
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "IPython", "--simple-prompt", "--no-banner", "--colors=NoColor",
             "--HistoryManager.hist_file=:memory:", "--no-confirm-exit"],
            env=env, cwd=str(cwd), dimensions=(40, COLUMNS), encoding="utf-8", timeout=180,
        )
        self.child.expect(PROMPT)

    def run(self, cell: str) -> list[str]:
        """Type `cell` (one line of Python, or a cell magic) and read what it wrote."""
        lines = cell.split("\n")
        for line in lines:
            self.child.send(line + "\r")
        if len(lines) > 1:  # a multi-line cell ends with blank lines
            self.child.send("\r\r")
        self.child.expect(PROMPT)
        echoed = len(lines) + (2 if len(lines) > 1 else 0)  # the input as typed, and "...:" lines
        return screen(self.child.before)[echoed:]

    def close(self) -> None:
        self.child.sendline("exit")
        self.child.expect(pexpect.EOF)
        self.child.close()


def screen(output: str) -> list[str]:
    """What `output` leaves on a 100-column screen (tall enough to keep every line)."""
    shown = pyte.Screen(COLUMNS, 2000)
    pyte.Stream(shown).feed(output)
    lines = [line.rstrip() for line in shown.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w’'$.,:/-]*\w", text))


@pytest.fixture
def terminal(tmp_path):
    term = Terminal(tmp_path)
    yield term
    term.close()


def test_an_answer_reads_as_rendered_markdown_wrapped_at_words(terminal, tmp_path):
    terminal.run("%load_ext mistral_magic")
    shown = terminal.run("%%mistral --max-tokens 300\n"
                         "Explain the bias-variance trade-off in three bullet points.")
    terminal.run("import mistral_magic; s = mistral_magic.session(); "
                 "open('answer.txt', 'w').write(s.last.text); "
                 "open('footer.txt', 'w').write(s.footer(s.last));")
    answer = (tmp_path / "answer.txt").read_text()
    footer = (tmp_path / "footer.txt").read_text()
    assert "## " in answer and "**" in answer and "\n- " in answer  # Markdown was sent back

    body = shown[next(i for i, line in enumerate(shown) if "Offline answer" in line):]
    assert all(len(line) <= COLUMNS for line in body)
    assert not any(line.lstrip().startswith(("## ", "- ", "* ")) for line in body), body
    assert not any("**" in line for line in body), body
    assert sum(line.lstrip().startswith("•") for line in body) >= 3  # the bullets, rendered
    assert not any("▍" in line for line in body)  # the streaming cursor is gone
    # No word cut in two by the terminal's own wrapping: each one is whole on some line.
    plain = re.sub(r"[*_#`]", "", answer)
    on_screen = words("\n".join(body))
    assert words(plain) <= on_screen, sorted(words(plain) - on_screen)
    assert words(footer) <= on_screen, sorted(words(footer) - on_screen)
    assert " ".join(footer.split()) in " ".join(" ".join(body).split())

    said = terminal.run("%mistral undo")
    assert any(line.startswith("Removed the last turn of chat `default`") for line in said), said
    assert not any(line.startswith("Out[") for line in said), said  # said, not a value


def test_tables_and_text_views_at_100_columns(terminal):
    terminal.run("%load_ext mistral_magic")
    terminal.run("%%mistral --max-tokens 20\nOne short question.")
    models = terminal.run("%mistral models")
    assert all(len(line) <= COLUMNS for line in models)
    header = next(line for line in models if line.startswith("id "))
    for column in ("context", "reasoning", "tools", "vision", "input_per_1m", "output_per_1m",
                   "per_1k_pages"):
        assert column in header, header
    rows = [line for line in models if re.match(r"(mistral|ministral|magistral|codestral|"
                                                 r"devstral|pixtral|voxtral|labs|open|zai)-", line)]
    assert len(rows) > 60, "every model, not pandas' 10"
    assert not any(line.strip() in ("...", "..") for line in models)
    ocr = next(line for line in rows if line.startswith("mistral-ocr-2505 "))
    assert ocr.split()[-1] == "1"  # $1 per 1,000 pages
    assert any("more columns: aliases" in line for line in models)

    usage = terminal.run("%mistral usage")
    header = next(line for line in usage if line.startswith("model "))
    for column in ("prompt_tokens", "completion_tokens", "cost", "status"):
        assert column in header, header
    assert all(len(line) <= COLUMNS for line in usage)

    meter = terminal.run("%mistral meter")
    text = "\n".join(meter)
    assert "Warning" not in text and "warnings.warn" not in text and ".py:" not in text, text
    assert meter[0].startswith("(No widget front end here, so the usage meter is text")
    assert any(line.startswith("mistral_magic usage: 1 call") for line in meter)

    config = terminal.run("%mistral config")
    assert all(len(line) <= COLUMNS for line in config)
    assert "neither read nor written." in " ".join(" ".join(config).split())  # help in full
    assert any(re.match(r"model\s+mistral-small-latest\s", line) for line in config)
