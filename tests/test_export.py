"""`%mistral export`: a chat as Markdown or as a notebook of `%%mistral` cells with outputs,
with no key, signed URL or local path in it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import run
from IPython.core.error import UsageError
from offline_documents import invoice_pdf, picture

import mistral_magic

KEY = "srv-key-0123456789abcdef"


@pytest.fixture
def dialogue(ip, tmp_path, monkeypatch):
    """A chat with a system prompt, a document, a picture, a tool call and a reasoning turn."""
    monkeypatch.setenv("MISTRAL_SERVER_KEY", KEY)  # a key in use, pasted into a prompt below
    (tmp_path / "invoice.pdf").write_bytes(invoice_pdf())
    ip.user_ns["photo"] = picture(64, 48)

    def lookup(path: str) -> str:
        """Where a file lives.

        Args:
            path: the file's name.
        """
        return str(Path.home() / "data" / path)

    ip.user_ns["lookup"] = lookup
    run(ip, '%%mistral -c lesson -s "You are a patient teacher."\n'
            f"What is overfitting? My key is {KEY}, my notes are in {Path.home()}/notes.txt "
            f"and {tmp_path}/draft.md", cell_id="c1")
    run(ip, "%%mistral -c lesson --file invoice.pdf --image photo\nWho is the customer?",
        cell_id="c2")
    run(ip, "%%mistral -c lesson --tools lookup\nWhere does the file path=report.csv live?",
        cell_id="c3")
    run(ip, "%%mistral -c lesson --think high\nWhich matters most?", cell_id="c4")
    chat = mistral_magic.session().chats.get("lesson")
    assert len(chat.turns) == 4 and chat.turns[2].tools and chat.turns[3].thinking
    return chat


def assert_nothing_private(text: str, tmp_path: Path) -> None:
    assert KEY not in text and KEY.lower() not in text.lower()
    assert str(Path.home()) + "/" not in text and str(tmp_path) not in text
    assert "data:image" not in text and "mistral-magic:upload" not in text
    assert "X-Amz" not in text and "signature=" not in text.lower()


def test_markdown_holds_the_dialogue_and_nothing_private(ip, dialogue, tmp_path):
    note = ip.run_line_magic("mistral", "export -c lesson lesson.md")
    assert note == "Exported chat `lesson` (4 turns) to `lesson.md`."
    text = (tmp_path / "lesson.md").read_text()
    assert text.startswith("# Chat `lesson`") and "*System prompt:* You are a patient teacher." in text
    for turn in dialogue.turns:
        assert turn.answer.strip().splitlines()[0] in text
    assert text.count("## 1. You") == 1 and "## 4. mistral-small-latest" in text
    assert "*Offline answer from mistral-small-latest" in text  # as it was shown
    assert "*Sent with it:* picture (image/png), document: invoice.pdf" in text
    assert "**Tool calls**" in text and "- ⚙ lookup(path='report')" in text
    assert "→ ~/data/report" in text  # the tool's result, its home folder as ~
    assert "> **Reasoning** · " in text and "> Offline reasoning trace" in text
    assert text.count("<sub>mistral-small-latest · ") == 4  # each turn's footer
    assert "[redacted]" in text and "~/notes.txt" in text and "./draft.md" in text
    assert_nothing_private(text, tmp_path)


def test_a_notebook_of_cells_with_their_outputs(ip, dialogue, tmp_path):
    ip.run_line_magic("mistral", "export -c lesson lesson.ipynb")
    raw = (tmp_path / "lesson.ipynb").read_text()
    assert_nothing_private(raw, tmp_path)
    nb = nbformat.read(tmp_path / "lesson.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == "%load_ext mistral_magic" and not code[0].outputs
    asked = code[1:]
    assert [c.source.splitlines()[0] for c in asked] == [
        "%%mistral -c lesson -s 'You are a patient teacher.'", "%%mistral -c lesson",
        "%%mistral -c lesson", "%%mistral -c lesson"]
    assert asked[1].source.endswith("Who is the customer?")
    assert any("sent with: picture (image/png), document: invoice.pdf" in c.source
               for c in nb.cells if c.cell_type == "markdown")
    for cell, turn in zip(asked, dialogue.turns, strict=True):
        (output,) = cell.outputs
        html = output["data"]["text/html"]
        assert html.startswith('<div class="mistral-magic mathjax_ignore">') and "<sub" in html
        assert output["metadata"]["mistral_magic"]["model"] == turn.model
        assert output["data"]["text/plain"].endswith(turn.footer.replace(KEY, "[redacted]"))
    assert '<details class="mistral-tool">' in asked[2].outputs[0]["data"]["text/html"]
    assert 'class="mistral-reasoning"' in asked[3].outputs[0]["data"]["text/html"]


def test_what_export_refuses(ip, dialogue, tmp_path):
    with pytest.raises(UsageError, match="FILE.md or FILE.ipynb"):
        ip.run_line_magic("mistral", "export -c lesson lesson.txt")
    with pytest.raises(UsageError, match="chat 'nobody' has no turns to export"):
        ip.run_line_magic("mistral", "export -c nobody x.md")
    (tmp_path / "teaching.ipynb").write_text("{}")
    with pytest.raises(UsageError, match="teaching.ipynb exists; .* --force"):
        ip.run_line_magic("mistral", "export -c lesson teaching.ipynb")
    assert (tmp_path / "teaching.ipynb").read_text() == "{}"
    ip.run_line_magic("mistral", "export -c lesson teaching.ipynb --force")
    nbformat.read(tmp_path / "teaching.ipynb", as_version=4)
