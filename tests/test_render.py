"""The one render path: outside text becomes sanitised HTML, and Markdown still renders.

The XSS corpus (tests/xss_corpus.py) goes through the renderer and through every
place that shows outside text: a cell's streamed and final output, notes, the dry
run, the chat panel and widget labels, and the `%mistral history|chats|usage`
tables. Each output is read back with an HTML parser that knows nothing of nh3.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import run
from xss_corpus import CORPUS, PAYLOADS, problems, unsafe_url

import mistral_magic
from mistral_magic import widgets
from mistral_magic.errors import MistralMagicError
from mistral_magic.money.usage import CallRecord
from mistral_magic.show import render

TEXTS = [text for _, text in PAYLOADS]


def assert_inert(markup: str, allow_style: bool = False, allow_tags=frozenset()) -> None:
    found = problems(markup, allow_style, allow_tags)
    assert not found, f"live markup in the output: {found}\n{markup[:2000]}"


def html_outputs(ip) -> list[str]:
    """Every text/html the front end was sent: streamed updates included."""
    return [m["data"]["text/html"] for m in ip.display_pub.messages
            if "data" in m and "text/html" in m["data"]]


# -- the checker itself ---------------------------------------------------------------------


@pytest.mark.parametrize("markup", [
    '<img src=x onerror="x()">', "<script>x()</script>", '<a href="javascript:x()">a</a>',
    '<a href="&#106;avascript:x()">a</a>', '<a href="java\tscript:x()">a</a>',
    '<a href=" JaVaScript:x()">a</a>', '<a href="data:text/html,x">a</a>', "<svg/onload=x()>",
    '<p style="color:red">a</p>', '<iframe srcdoc="x"></iframe>', "<details ontoggle=x()>",
])
def test_the_checker_sees_live_markup(markup):
    assert problems(markup)


def test_the_checker_accepts_safe_links():
    assert not problems('<a href="https://a.b/c:d">a</a> <a href="mailto:a@b.c">m</a> '
                        '<a href="notes.md">n</a> <a href="#top">t</a>')
    assert unsafe_url("java%09script:x")  # looks like a scheme: not a relative address


def test_corpus_payloads_fit_the_offline_quote():
    # The offline model quotes the first ten words of a prompt; the browser test relies on it.
    for text in TEXTS:
        assert len(text.split()) <= 10 and "\n" not in text, text
    assert len({flag for flag, _ in PAYLOADS}) == len(PAYLOADS)


# -- the renderer over the corpus -------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS, ids=[flag for flag, _ in PAYLOADS])
def test_each_payload_renders_inert(text):
    for markup in (render.markdown(text)["text/html"], render.partial(text)["text/html"],
                   render.markdown(f"Intro **bold** {text} and more", "footer $0.01")["text/html"],
                   render.markdown(f"- item\n  > {text}")["text/html"],
                   render.markdown(f"| a |\n|---|\n| {text} |")["text/html"]):
        assert_inert(markup)


def test_the_whole_corpus_renders_inert_and_stays_readable():
    bundle = render.markdown(CORPUS, "mistral-small-latest · $0.000123")
    assert_inert(bundle["text/html"])
    assert bundle["text/plain"].startswith(CORPUS)
    shown = bundle["text/html"]
    # Raw HTML is shown as text, not dropped: the reader sees what the model wrote.
    assert '&lt;img src=x onerror="window.__xss1=1"&gt;' in shown
    assert "&lt;script&gt;window.__xss2=1&lt;/script&gt;" in shown
    assert "<code>&lt;img src=x onerror=window.__xss26=1&gt;</code>" in shown


def test_markdown_links_and_images_keep_only_safe_addresses():
    shown = render.markdown_html(
        "[a](https://example.com/a?b=1) [m](mailto:someone@example.com) [h](http://x.org) "
        "[r](notes/readme.md) [t](#section) [j](javascript:alert(1)) [v](vbscript:x) "
        "[f](file:///etc/passwd) [s](java&#x09;script:alert(1)) ![cat](https://e.org/cat.png)"
    )
    hrefs = re.findall(r'href="([^"]*)"', shown)
    assert hrefs == ["https://example.com/a?b=1", "mailto:someone@example.com", "http://x.org",
                     "notes/readme.md", "#section", "https://e.org/cat.png"]
    assert 'rel="noopener noreferrer"' in shown
    # A picture is a link to it, never fetched by the page on its own.
    assert "<img" not in shown and ">image: cat</a>" in shown


def test_math_renders_and_prices_stay_text():
    shown = render.markdown_html(
        "It costs $5 and $10, or $5-$10, or $ 3 $. Energy $E = mc^2$ and $$\\int_0^1 x\\,dx$$.\n\n"
        "$$\na^2 + b^2 = c^2\n$$\n\n\\(x < y\\) and\n\n\\[\n\\frac{1}{2}\n\\]\n\n"
        "\\begin{align}\na &= b\n\\end{align}\n"
    )
    assert "It costs $5 and $10, or $5-$10, or $ 3 $." in shown
    maths = re.findall(r'<(span|div) class="math mathjax_process">(.*?)</\1>', shown, re.S)
    assert [m for _, m in maths] == [
        "\\(E = mc^2\\)", "\\[\\int_0^1 x\\,dx\\]", "\\[a^2 + b^2 = c^2\\]", "\\(x &lt; y\\)",
        "\\[\\frac{1}{2}\\]", "\\begin{align}\na &amp;= b\n\\end{align}",
    ]
    assert shown.count("mathjax_process") == 6


def test_bracket_math_within_a_line_renders_and_keeps_the_text_around_it():
    # As MathJax reads a notebook's Markdown: \[…\] within a paragraph is display math,
    # and a line that starts with one keeps the text after it.
    shown = render.markdown_html("\\[x^2\\] where x is big\n\nThe mean \\[\\bar x\\] is here.")
    maths = re.findall(r'<span class="math mathjax_process">(.*?)</span>', shown)
    assert maths == ["\\[x^2\\]", "\\[\\bar x\\]"]
    assert "where x is big" in shown and "is here." in shown
    unsafe = render.markdown_html("a \\[\\href{javascript:x}{y}\\] b")  # code, as in $…$
    assert "mathjax_process" not in unsafe and "<code>\\href{javascript:x}{y}</code>" in unsafe


def test_tex_that_makes_links_or_loads_code_is_shown_as_code():
    for tex in ("\\href{javascript:alert(1)}{x}", "\\class{jp-Dialog}{x}", "\\style{color:red}{x}",
                "\\require{action}", "\\cssId{a}{x}", "\\url{javascript:x}"):
        shown = render.markdown_html(f"${tex}$ and\n\n$$\n{tex}\n$$\n")
        assert "mathjax_process" not in shown, tex
        assert shown.count("<code>") == 2


def test_markdown_still_renders():
    shown = render.markdown_html(
        "# Title\n\n## Part\n\nSome *emphasis*, **strong**, ~~gone~~ and `code`.\n\n"
        "- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n---\n\n"
        "```python\nprint('<b>hi</b>')\n```\n\n"
        "```jp-Dialog onload=alert(1)\nx\n```\n\n"
        "| name | n |\n|:-----|--:|\n| a | 1 |\n"
    )
    for piece in ("<h3>Title</h3>", "<h4>Part</h4>", "<em>emphasis</em>", "<strong>strong</strong>",
                  "<s>gone</s>", "<code>code</code>", "<ul>\n<li>one</li>", '<ol start="3">',
                  "<blockquote>", "<hr>",
                  "<pre><code class=\"language-python\">print('&lt;b&gt;hi&lt;/b&gt;')",
                  "<table>", '<th align="left">name</th>', '<td align="right">1</td>'):
        assert piece in shown, piece
    # A fence's info string is the model's: a language name, not a way to add classes.
    assert '<pre><code class="language-jp-Dialog">x' in shown
    assert_inert(shown)


def test_the_answer_sits_in_a_mathjax_ignore_block_with_its_footer():
    bundle = render.markdown("Costs $5 and $10.", "model · 1 in / 2 out · $0.000123 · <b>")
    shown = bundle["text/html"]
    assert shown.startswith('<div class="mistral-magic mathjax_ignore">')
    assert "<sub class='mathjax_ignore'>model · 1 in / 2 out · $0.000123 · &lt;b&gt;</sub>" in shown
    assert bundle["text/plain"] == "Costs $5 and $10.\n\nmodel · 1 in / 2 out · $0.000123 · <b>"


def test_notes_code_and_widget_pieces_escape_their_text():
    for text in TEXTS:
        assert_inert(render.note(text)["text/html"])
        assert_inert(render.code(text, "json", text)["text/html"])
        assert_inert(render.line(text, lead=text, minor=True, tone="error"), allow_style=True)
        assert_inert(render.table([text, "n"], [[text, text]]), allow_style=True)
        assert text in render.note(text)["text/plain"]
    assert 'class="language-json"' in render.code("{}", "json")["text/html"]
    assert "class=" not in render.code("{}", 'json" onclick="x')["text/html"].split("<pre>")[1]


def test_a_structured_result_frame_is_escaped_by_pandas():
    import pandas as pd

    values = pd.DataFrame({TEXTS[0]: TEXTS[:5]}, index=pd.Index(TEXTS[5:10], name=TEXTS[10]))
    bundle = render.frame(values, "footer $0.01")
    assert_inert(bundle["text/html"], allow_style=True, allow_tags={"style"})  # pandas' own
    assert "&lt;script&gt;window.__xss2=1&lt;/script&gt;" in bundle["text/html"]
    assert bundle["text/html"].startswith('<div class="mistral-magic mathjax_ignore">')


# -- every place that shows outside text --------------------------------------------------------


def test_a_cell_streams_and_ends_as_inert_html(ip, magic_server):
    magic_server.set_faults({"token_delay_ms": 3})
    for text in TEXTS[:6]:
        ip.display_pub.messages.clear()
        run(ip, f"%%mistral --no-history --no-interpolate\n{text}")
        outputs = html_outputs(ip)
        assert len(outputs) >= 3, "the waiting note, streamed updates and the final answer"
        for markup in outputs:
            assert_inert(markup)
        assert mistral_magic.session().last.text.count(text.split()[0]) >= 1  # it was quoted
    assert not any("text/markdown" in m.get("data", {}) for m in ip.display_pub.messages)


def test_code_format_structured_dry_run_and_notes_are_inert(ip):
    payload = TEXTS[0]
    run(ip, f"%%mistral --format code --no-interpolate\nWrite python for {payload}")
    run(ip, f"%%mistral --json --no-interpolate\nGive JSON about {payload}")
    run(ip, f"%%mistral --dry-run --no-interpolate\n{payload}")
    run(ip, "%mistral undo")  # its note quotes the prompt
    run(ip, '%mistral schema "name, age int"')
    for markup in html_outputs(ip):
        assert_inert(markup)
    ip.run_line_magic("mistral", "reset -c '<img src=x onerror=alert(1)>'")
    note = ip.display_pub.messages[-1]["data"]["text/html"]
    assert_inert(note)
    assert "&lt;img src=x onerror=alert(1)&gt;" in note


def hostile_model_in_the_ledger(ip) -> None:
    """A model id that is markup: refused before sending, and in the ledger as the row a
    server's own refusal leaves (when the backend's model list cannot be had)."""
    model = "<img src=x onerror=window.__m=1>"
    with pytest.raises(MistralMagicError, match="Unknown model"):
        ip.run_cell_magic("mistral", f"-m '{model}'", "hi")
    mistral_magic.session().ledger.record(CallRecord(
        model=model, prompt_tokens=0, completion_tokens=0, cost=0.0, status="error",
        backend="self-hosted", error=f"Mistral API error 400: Invalid model: {model}"))


def test_history_chats_and_usage_tables_escape_cell_text(ip):
    # pandas escapes what DataFrame._repr_html_ shows; this keeps it so.
    run(ip, f"%%mistral -c x -s '{TEXTS[0]}' --no-interpolate\n{TEXTS[2]}")
    hostile_model_in_the_ledger(ip)
    for command in ("history -c x", "chats", "usage"):
        frame = ip.run_line_magic("mistral", command)
        shown = frame._repr_html_()
        assert_inert(shown, allow_style=True, allow_tags={"style"})  # pandas: fixed styles
        assert "&lt;" in shown, command
    assert "&lt;svg onload=window.__xss3=1&gt;" in ip.run_line_magic("mistral", "history -c x")._repr_html_()
    assert "&lt;img src=x onerror=window.__m=1&gt;" in ip.run_line_magic("mistral", "usage")._repr_html_()


def test_chat_panel_renders_prompt_answer_title_and_status_inert(ip):
    session = mistral_magic.session()
    run(ip, f"%%mistral -c xss -s '{TEXTS[3]}' --no-interpolate\n{TEXTS[0]}")
    panel = widgets.ChatPanel(session, "xss")
    parts = []  # every state of the live answer, as the front end was sent it
    panel.live.observe(lambda change: parts.extend(out["data"]["text/html"] for out in change["new"]),
                       names="outputs")
    panel.send(CORPUS).result(30)
    try:
        assert parts, "the live answer was rendered"
        shown = [out["data"]["text/html"] for out in panel.history.outputs]
        assert len(shown) == 4
        for markup in [*shown, *parts]:
            assert_inert(markup)
        assert_inert(panel.title.value, allow_style=True)
        assert "system: &lt;iframe" in panel.title.value
        assert_inert(panel.status.value, allow_style=True)
        assert '&lt;img src=x onerror="window.__xss1=1"&gt;' in shown[2]
    finally:
        panel.close()


def test_meter_and_settings_labels_escape_model_names(ip):
    session = mistral_magic.session()
    hostile_model_in_the_ledger(ip)
    meter = widgets.UsageMeter(session)
    try:
        assert "&lt;img src=x onerror=window.__m=1&gt;" in meter.by_model.value
        for value in (meter.summary.value, meter.by_model.value, meter.budget_label.value):
            assert_inert(value, allow_style=True)
    finally:
        meter.close()


def test_load_does_not_import_the_renderer():
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_line_magic('load_ext', 'mistral_magic')\n"
        "print([m for m in ('markdown_it', 'mdit_py_plugins', 'nh3') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
