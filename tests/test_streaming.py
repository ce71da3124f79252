"""A streamed answer costs the front end bytes linear in its length, and ends showing what
one rendered output would (show/display.py, show/blocks.py).

The view is fed the pieces of real offline streams with a clock that moves at a hosted
model's pace, so the updates a slow stream gets are reproduced without waiting: what is
checked is what the front end was sent, never how long anything took.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import nbformat
from conftest import CapturingPublisher
from nbclient import NotebookClient

from mistral_magic.show import display, render
from mistral_magic.show.display import StreamView

FOOTER = "mistral-small-latest · 12 in / 34 out · $0.0001 · session $0.0001"
PACE_TOKENS_PER_S = 50
TRICKY = (
    "# Title\n\nIntro with **bold**, `code` and prices $5 and $10.\n\n- one\n- two\n  continued\n\n"
    "1. first\n2. second\n\n```python\nprint('x')\n\nmore()\n```\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n\n"
    "$$\nx^2\n$$\n\n> quote\nlazy line\n\nSetext\n======\n\npara\n# a heading interrupts\ntext\n---\n\n"
    "    indented code\n\n    more code\n\nmath $x$ and \\(y\\)\n\n\\[\nz\n\\]\n\n***\n\n"
    "ends with #hash\n#not-a-heading\n\n- a\n\n  b in a\n\n- c\n\n1) x\n2) y\n\n"
    "\\begin{align}\na &= b\n\\end{align}\n\ntext |a| b\n|--|--|\n|1|2|\n\nlast words\n"
)


def stream_pieces(sdk, tokens: int) -> list[str]:
    """The text pieces of one real offline stream of `tokens` tokens."""
    plan = json.dumps({"answer_tokens": tokens})
    with sdk.chat.stream(model="mistral-small-latest", max_tokens=tokens,
                         messages=[{"role": "user", "content": "Write a long essay."}],
                         http_headers={"X-Offline-Faults": plan}) as events:
        return [event.data.choices[0].delta.content or "" for event in events
                if event.data.choices]


def sent_bytes(message: dict) -> int:
    """One display message as jupyter_client packs it: JSON, UTF-8."""
    return len(json.dumps({"data": message["data"], "metadata": message["metadata"],
                           "transient": message["transient"]}, ensure_ascii=False).encode())


def replay(shell, pieces: list[str], seconds_per_piece: float, fmt: str = "markdown") -> str:
    """Stream `pieces` into a new view at a pace, then finish it; returns the answer."""
    now = [0.0]
    view = StreamView(shell, fmt, clock=lambda: now[0])
    view.start()
    parts: list[str] = []
    for piece in pieces:
        now[0] += seconds_per_piece
        parts.append(piece)
        view.feed(parts)
    text = "".join(parts)
    view.finish(text, FOOTER, {"model": "mistral-small-latest"})
    return text


def inner(html: str) -> str:
    return html.removeprefix(render.CONTAINER.format("")[:-6]).removesuffix("</div>")


def test_a_long_answer_at_a_hosted_pace_costs_bytes_linear_in_it(ip, sdk):
    ratios = {}
    for tokens in (1500, 4000):
        ip.display_pub = CapturingPublisher()
        text = replay(ip, stream_pieces(sdk, tokens), 1 / PACE_TOKENS_PER_S)
        messages = [m for m in ip.display_pub.messages if "data" in m]
        finals = ip.display_pub.finals()
        ratios[tokens] = sum(map(sent_bytes, messages)) / len(text.encode())

        # The outputs together show the whole answer, as one rendered output would.
        shown = "".join(inner(f["data"].get("text/html", "")) for f in finals)
        assert shown == inner(render.block(text, FOOTER))
        assert len(finals) > 3, "a long answer streams into outputs of finished blocks"
        answer = [f for f in finals if "mistral_magic" in f["metadata"]]
        assert len(answer) == 1 and answer[0] is finals[-1]
        assert answer[0]["data"]["text/plain"] == f"{text}\n\n{FOOTER}"
        # Finished blocks are sent once: no earlier output is sent again in its final form.
        # (Outputs are told apart by their display id: two paragraphs may read the same.)
        for output in finals[:-1]:
            same = output["transient"]["display_id"]
            assert sum(m["data"] == output["data"] and m["transient"]["display_id"] == same
                       for m in messages) == 1
        # Its final state is written once.
        assert sum("mistral_magic" in m["metadata"] for m in messages) == 1
        # What updates sent beyond the final state stays within the view's budget.
        waste = sum(map(sent_bytes, messages)) - sum(map(sent_bytes, finals))
        # The budget, and the answer's first SPLIT_CHARS shown whole each time they grew by
        # GROWTH (a constant: a geometric series, one envelope per step).
        steps = math.log(display.SPLIT_CHARS) / math.log(display.GROWTH)
        growth = (display.GROWTH / (display.GROWTH - 1) * 1.2 * display.SPLIT_CHARS
                  + display.MESSAGE_BYTES * steps)
        assert waste <= display.WASTE_START + display.WASTE_SHARE * len(text.encode()) * 1.1 + growth
    # Linear: a longer answer costs no more per byte (re-sending the text so far on
    # every update made 4,000 tokens cost twice what 1,500 did, per byte, at this pace).
    assert ratios[4000] <= ratios[1500] + 0.05
    assert ratios[4000] < 2.9


def test_the_pieces_of_a_split_answer_show_what_the_whole_does(ip, monkeypatch):
    # No budget and no minimum length: every update that finds a finished block splits.
    monkeypatch.setattr(display, "WASTE_START", 10**9)
    monkeypatch.setattr(display, "SPLIT_CHARS", 0)
    for seed in range(12):
        rng = random.Random(seed)
        document = TRICKY * (1 + seed % 3)
        pieces, at = [], 0
        while at < len(document):
            size = rng.randint(1, 15)
            pieces.append(document[at:at + size])
            at += size
        ip.display_pub = CapturingPublisher()
        replay(ip, pieces, 1.0)
        finals = [f for f in ip.display_pub.finals() if f["data"].get("text/html")]
        assert len(finals) > 3, f"seed {seed}: the answer was written whole at the end"
        shown = "".join(inner(f["data"]["text/html"]) for f in finals)
        assert shown == inner(render.block(document, FOOTER)), f"seed {seed}"


def test_a_short_answer_arriving_slowly_keeps_moving_in_one_output(ip, sdk):
    """At 20 tok/s the budget soon cannot pay for showing a short answer whole again; it is
    still shown each time it has doubled (`GROWTH`), in its one output."""
    pieces = stream_pieces(sdk, 300)
    now = [0.0]
    ip.display_pub = CapturingPublisher()
    view = StreamView(ip, "markdown", clock=lambda: now[0])
    view.start()
    parts: list[str] = []
    moved = [0]  # the characters received at each update
    for piece in pieces:
        now[0] += 1 / 20
        parts.append(piece)
        sent = len(ip.display_pub.messages)
        view.feed(parts)
        if len(ip.display_pub.messages) > sent:
            moved.append(len("".join(parts)))
    text = "".join(parts)
    view.finish(text, FOOTER, {})
    assert 600 < len(text) < display.SPLIT_CHARS
    assert len(ip.display_pub.finals()) == 1
    longest = max(map(len, pieces))
    for shown, then in zip(moved, [*moved[1:], len(text)], strict=True):
        assert then - shown <= (display.GROWTH - 1) * shown + longest + 40, moved


def test_a_paragraph_ends_at_its_blank_line_and_a_list_waits_for_the_next_block():
    from mistral_magic.show import blocks

    # A model writes a paragraph as one line: it is shown once the blank line after it came.
    assert blocks.finished("One long paragraph.\n\nThe next one, arriving") == (
        len("One long paragraph.\n\n"), render.tokens_html(render.parse("One long paragraph.\n")))
    assert blocks.finished("## A heading\n\n")[0] == len("## A heading\n\n")
    # Not before the blank line (a next line may continue it), and never a list, a quote or
    # an open fence by a blank line alone (a list may turn loose, the others go on).
    for text in ("One paragraph.\n", "- a\n- b\n\n", "> quoted\n\n", "```\ncode\n\n"):
        assert blocks.finished(text) == (0, ""), text


def test_a_line_still_arriving_ends_no_block(ip, monkeypatch):
    # "#" alone is an empty heading that would end the paragraph above it; "#x" is text in it.
    monkeypatch.setattr(display, "WASTE_START", 10**9)
    monkeypatch.setattr(display, "SPLIT_CHARS", 0)
    pieces = ["First paragraph here.\n\nsecond paragraph\n#", "x goes on\n\nthird\n\n", "fourth\n\n",
              "last"]
    text = replay(ip, pieces, 1.0)
    finals = [f for f in ip.display_pub.finals() if f["data"].get("text/html")]
    assert len(finals) == 4
    assert "".join(inner(f["data"]["text/html"]) for f in finals) == inner(render.block(text, FOOTER))


def test_the_unfinished_block_is_shown_once_it_has_a_line_of_text(ip, monkeypatch):
    # A few words more would cost less than the message carrying them.
    monkeypatch.setattr(display, "WASTE_START", 10**9)
    monkeypatch.setattr(display, "SPLIT_CHARS", 0)
    line = "x" * 100  # a line, more than TAIL_CHARS
    assert 20 < display.TAIL_CHARS <= len(line)
    pieces = ["A first paragraph.\n\nSec", "ond", line, "\n\nthe end"]
    text = replay(ip, pieces, 1.0)
    shown = [inner(m["data"]["text/html"]) for m in ip.display_pub.messages
             if m["data"].get("text/html")]
    assert not any("Sec" in html and line not in html for html in shown)  # never alone
    assert any("Second" + line in html and display.CURSOR.strip() in html for html in shown)
    finals = [f for f in ip.display_pub.finals() if f["data"].get("text/html")]
    assert "".join(inner(f["data"]["text/html"]) for f in finals) == inner(render.block(text, FOOTER))


def test_a_link_defined_after_its_use_ends_as_one_output(ip, monkeypatch):
    monkeypatch.setattr(display, "WASTE_START", 10**9)
    monkeypatch.setattr(display, "SPLIT_CHARS", 0)
    filler = "More text that takes a while to arrive, long enough to be shown on its own. " * 3
    document = f"See [the docs][d].\n\n{filler}\n\n{filler}\n\n[d]: https://example.com/docs\n\nEnd.\n"
    replay(ip, [document[i:i + 4] for i in range(0, len(document), 4)], 1.0)
    shown = [f for f in ip.display_pub.finals() if f["data"].get("text/html")]
    assert len(shown) == 1 and 'href="https://example.com/docs"' in shown[0]["data"]["text/html"]
    assert shown[0]["data"] == render.markdown(document, FOOTER)
    # It had been split as it streamed: the other outputs are emptied.
    assert len({m["transient"]["display_id"] for m in ip.display_pub.messages}) > 1


def test_a_short_answer_and_other_formats_stay_one_output(ip, sdk):
    pieces = stream_pieces(sdk, 1500)
    for fmt in ("code", "text"):
        ip.display_pub = CapturingPublisher()
        text = replay(ip, pieces, 1 / PACE_TOKENS_PER_S, fmt)
        finals = ip.display_pub.finals()
        assert len(finals) == 1 and finals[0]["data"]["text/plain"].startswith(text)
    ip.display_pub = CapturingPublisher()
    replay(ip, pieces[:display.SPLIT_CHARS // 10], 1 / PACE_TOKENS_PER_S)
    assert len(ip.display_pub.finals()) == 1


def test_a_saved_notebook_shows_a_long_streamed_answer(tmp_path, monkeypatch):
    """nbclient applies each update in place: the saved outputs are the final state."""
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "%load_ext mistral_magic",
        "import mistral_magic.calls.backend\n"
        "mistral_magic.calls.backend.offline_server().set_faults("
        "{'answer_tokens': 1500, 'token_delay_ms': 2})",
        "%%mistral --no-history -o essay\nWrite a long essay.",
        "print(len(essay))",
    )]
    path = Path(tmp_path) / "long.ipynb"
    nbformat.write(nb, path)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[2].outputs
    assert all(o.output_type == "display_data" for o in outputs) and len(outputs) > 2
    answer = [o for o in outputs if "mistral_magic" in o.metadata]
    assert len(answer) == 1 and answer[0] is outputs[-1]
    plain = answer[0].data["text/plain"]
    text, footer = plain.rsplit("\n\n", 1)
    # The value is the answer without the offline label line the cell shows above it.
    label, value = text.split("\n\n", 1)
    assert label.startswith("*Offline answer from") and len(value) == int(nb.cells[3].outputs[0].text)
    # The outputs of finished blocks are HTML alone (the notice of the offline backend
    # before them has its text): they and the last one show the whole answer.
    pieces = [o for o in outputs[:-1] if "text/plain" not in o.data]
    assert len(pieces) > 1
    shown = "".join(inner(o.data["text/html"]) for o in [*pieces, outputs[-1]])
    assert shown == inner(render.block(text, footer))
    assert display.CURSOR.strip() not in shown
