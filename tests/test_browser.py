"""The notebooks in a real JupyterLab, in Chromium: answers stream and render, widgets work.

JupyterLab serves temporary copies of the notebooks on 127.0.0.1 with no API key, so
every answer comes from the offline server inside the kernel; `browser_lab` has the
setup (TESTING.md's recipe). Its answers are slowed to about 10 ms per token so that
streaming has intermediate states to see. Screenshots go to test-artifacts/ (with the
server log when a test fails) and, with MISTRAL_MAGIC_SCREENSHOTS=1, to
docs/screenshots/ for the README.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from browser_lab import (
    NOTEBOOKS,
    ROOT,
    Lab,
    artifacts_on_failure,
    browser,
    chromium,
    code_cell,
    open_notebook,
    render_problems,
    run_all,
    run_new_cell,
    screenshot,
    wait_for_run,
    watch_output,
    watch_render_problems,
    watched_states,
)
from xss_corpus import CORPUS, FLAGS, PAYLOADS

from mistral_magic.show.answer import INTERRUPTED_MARK
from mistral_magic.show.display import CURSOR

pytestmark = pytest.mark.browser

STREAMING = {"token_delay_ms": 10}  # a 150-token answer takes ~1.5 s: a dozen updates
LONG_ANSWER = {"token_delay_ms": 30, "answer_tokens": 3000}  # 90 s unless stopped
# A call's own cost, never "$0.00": three significant digits below a dollar.
FOOTER = re.compile(r"\d+ in / \d+ out · \$(?:0\.0*[1-9]\d*|[1-9][\d,]*\.\d\d)\b")
TYPESET_HINT = "costs as shown (a '$' pair typeset as LaTeX turns the text between into math)"
# What a widget shows when its view did not render: its text/plain (ours, or ipywidgets').
WIDGET_FALLBACKS = ["Loading widget", "VBox(", "HBox(", "FloatProgress(", "Dropdown(",
                    "mistral_magic usage:", "mistral_magic settings:", "Chat 'class':"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium()  # skip (or fail in CI) before starting anything
    server = Lab(tmp_path_factory.mktemp("lab"), faults=STREAMING)
    try:
        for path in NOTEBOOKS.glob("*.ipynb"):
            server.add_notebook(path.name)
        server.write_notebook(XSS_NOTEBOOK, xss_cells())
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def context(lab, tmp_path_factory):
    with browser(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


@pytest.fixture
def notebook(lab, context):
    """Opens a notebook in a new page; closes it and shuts its kernel down afterwards."""
    pages = []

    def open_(name: str):
        pages.append(open_notebook(context, lab, name))
        return pages[-1]

    yield open_
    for page in pages:
        page.close()
    lab.shutdown_kernels()


def assert_no_math(page) -> None:
    """No output was typeset as LaTeX: a `$` in costs must not start a formula."""
    typeset = page.locator(".jp-Notebook .jp-OutputArea-output").filter(
        has=page.locator("mjx-container"))
    texts = [t[:160] for t in typeset.all_inner_texts()]
    assert not texts, f"outputs typeset as LaTeX (their '$' read as math delimiters): {texts}"


def meter_calls(meter) -> int:
    found = re.search(r"(\d+) calls?\b", meter.inner_text())
    assert found, f"no call count in the meter: {meter.inner_text()!r}"
    return int(found[1])


def show_end(output_area, history) -> None:
    """Bring the chat panel into view with its transcript scrolled to the newest turn."""
    history.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    output_area.evaluate("el => el.scrollIntoView({block: 'end'})")


def test_quickstart_streams_and_renders(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("quickstart.ipynb")
    with artifacts_on_failure(page, lab, "quickstart"):
        watch_output(page, "Explain the bias-variance")
        run_all(page)
        wait_for_run(page, "%mistral config")

        states = watched_states(page)
        partial = [s for s in states if s.rstrip().endswith(CURSOR.strip())]
        assert len(set(partial)) >= 3, f"the answer did not stream: {states}"
        assert len(partial[-1]) > len(partial[0])
        assert CURSOR.strip() not in states[-1], "the last state is still a partial answer"

        answer = code_cell(page, "Explain the bias-variance").locator(
            ".jp-RenderedHTMLCommon").filter(has_text="Offline answer")
        expect(answer).to_have_count(1)
        expect(answer.locator("h4")).to_have_count(1)  # the answer's `## ` heading, demoted
        assert not re.search(r"^#+ ", answer.inner_text(), re.M), "raw Markdown left"
        expect(answer.locator("sub"), TYPESET_HINT).to_have_text(FOOTER)
        expect(answer.locator("sub"), TYPESET_HINT).to_contain_text("session $")

        follow = code_cell(page, "Now give a one-line example").locator(".jp-RenderedHTMLCommon")
        expect(follow).to_contain_text("earlier question")  # the history reached the model
        expect(follow.locator("sub"), TYPESET_HINT).to_have_text(FOOTER)
        expect(code_cell(page, "--format code").locator(".jp-RenderedHTMLCommon pre")).to_have_count(1)
        assert_no_math(page)
        assert not render_problems(page)

        page.locator(".jp-Notebook .jp-Cell").first.scroll_into_view_if_needed()
        screenshot(page, "quickstart", readme=True)


def test_teaching_widgets_chat_and_stop(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("teaching.ipynb")
    with artifacts_on_failure(page, lab, "teaching"):
        run_all(page)
        wait_for_run(page, "%mistral usage")

        meter = code_cell(page, "%mistral meter").locator(".jp-Cell-outputArea")
        panel = code_cell(page, "%mistral panel").locator(".jp-Cell-outputArea")
        chat = code_cell(page, "%mistral chat class").locator(".jp-Cell-outputArea")
        for view in (meter, panel, chat):
            expect(view.locator(".jupyter-widgets").first).to_be_visible()
        for text in WIDGET_FALLBACKS:
            expect(page.locator("body")).not_to_contain_text(text)

        expect(meter.locator(".widget-hprogress .progress-bar")).to_be_visible()
        expect(meter).to_contain_text(re.compile(r"\d+ calls · .* \$\d"))
        expect(meter, TYPESET_HINT).to_contain_text(re.compile(r"\$[\d.]+ of \$0\.05 budget"))
        expect(panel.locator(".widget-dropdown select")).to_be_visible()
        expect(panel.locator(".widget-dropdown option").filter(
            has_text=re.compile(r"mistral-small.*\$"))).not_to_have_count(0)
        expect(panel.locator(".widget-slider")).to_be_visible()
        assert_no_math(page)

        # The chat panel answers what is typed into it.
        history = chat.locator(".widget-output").nth(0)
        live = chat.locator(".widget-output").nth(1)
        status = chat.locator(".widget-html").last
        send = chat.get_by_role("button", name="Send")
        stop = chat.get_by_role("button", name="Stop")
        answers = history.locator(".jp-RenderedHTMLCommon").filter(has_text="Offline answer")
        before = answers.count()
        assert before >= 1, "the panel shows the turns the `-c class` cells made"
        calls = meter_calls(meter)
        chat.locator("textarea").fill("What is a validation set?")
        send.click()
        expect(answers).to_have_count(before + 1)
        expect(history).to_contain_text("What is a validation set?")
        expect(status).to_contain_text(FOOTER)
        expect(meter).to_contain_text(f"{calls + 1} calls")  # the panel's call reached the meter
        show_end(chat, history)
        screenshot(page, "teaching", readme=True)

        # Stop ends a long answer, keeps it marked interrupted, and the kernel stays usable.
        run_new_cell(page, "import mistral_magic.calls.backend\n"
                           f"mistral_magic.calls.backend.offline_server().set_faults({LONG_ANSWER!r})")
        chat.locator("textarea").fill("Tell me everything about regularisation.")
        send.click()
        expect(live).to_contain_text("Offline answer")  # partial text is streaming in
        expect(live).to_contain_text(CURSOR.strip())
        stop.click()
        expect(history).to_contain_text(INTERRUPTED_MARK.strip(" \n*"))
        expect(status).to_contain_text("interrupted ·")
        expect(send).to_be_enabled()
        expect(stop).to_be_disabled()
        show_end(chat, history)
        screenshot(page, "teaching-stopped")
        result = run_new_cell(page, "1+1")
        expect(result.locator(".jp-OutputArea-output")).to_have_text("2")
        assert not render_problems(page)


# -- model text never runs in the page ---------------------------------------------------------

XSS_NOTEBOOK = "xss.ipynb"
SYSTEM_FLAG, SYSTEM = "__xss0", "<img src=x onerror=window.__xss0=1>"
PRICES_PROMPT = "Prices $5 and $10; energy $E=mc^2$ and $$\\int_0^1 x\\,dx$$"


def quotable_prompts(limit: int = 10) -> list[str]:
    """The payloads packed into prompts of at most `limit` words (what the offline model quotes)."""
    prompts: list[list[str]] = [[]]
    for _, text in PAYLOADS:
        if prompts[-1] and len(" ".join(prompts[-1] + [text]).split()) > limit:
            prompts.append([])
        prompts[-1].append(text)
    return [" ".join(group) for group in prompts]


def xss_cells() -> list[str]:
    """The corpus through a --no-history cell, a chat's cell (then history) and the chat panel."""
    return [
        "%load_ext mistral_magic",
        "import json\nimport mistral_magic\nimport mistral_magic.calls.backend\n\n"
        "# Fast enough for many answers, slow enough for streamed updates.\n"
        "mistral_magic.calls.backend.offline_server().set_faults({'token_delay_ms': 2})\n"
        f"PROMPTS = {quotable_prompts()!r}",
        "for prompt in PROMPTS:\n"
        "    get_ipython().run_cell_magic('mistral', '--no-history --no-interpolate', prompt)",
        f"%%mistral -c xss -s '{SYSTEM}' --no-interpolate\n{CORPUS}",
        f"%%mistral --no-history\n{PRICES_PROMPT}",
        "records = mistral_magic.session().ledger.records\n"
        "print(json.dumps({'model': records[-1].model, 'in': records[-1].prompt_tokens,\n"
        "                  'out': records[-1].completion_tokens, 'calls': len(records),\n"
        "                  'session': sum(r.cost for r in records)}))",
        "%mistral chat xss",
    ]


def list_price(model: str) -> dict:
    """The model's list price, read from the price file itself (not through the package)."""
    models = json.loads((ROOT / "mistral_magic" / "money" / "prices.json").read_text())["models"]
    for name, price in models.items():
        if model == name or model in price.get("aliases", []):
            return price
    raise AssertionError(f"{model} has no list price")


def assert_cost_shown(shown: str, expected: float) -> None:
    """A cost as the footer shows it: three significant digits, so within half a unit of the third."""
    assert expected > 0
    value = float(shown.replace(",", ""))
    half_unit = 0.5 * 10 ** (math.floor(math.log10(expected)) - 2)
    assert abs(value - expected) <= half_unit * 1.001, f"${shown} shown, ${expected:.8f} spent"


def test_documents_show_thumbnails_pages_and_tables(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("documents.ipynb")
    with artifacts_on_failure(page, lab, "documents"):
        run_all(page)
        wait_for_run(page, "%mistral usage")
        asked = code_cell(page, "--image fig")
        thumb = asked.locator(".jp-RenderedImage img")
        expect(thumb).to_have_count(1)  # the thumbnail sheet, a PNG we made
        assert thumb.evaluate("img => img.naturalHeight") <= 96
        expect(asked.locator(".jp-RenderedHTMLCommon").last).to_contain_text("1 image received")
        ocr = code_cell(page, "%mistral ocr invoices/INV-1001.pdf").locator(".jp-RenderedHTMLCommon")
        expect(ocr.locator("table")).to_have_count(1)  # the page's Markdown table, rendered
        expect(ocr.locator("sub")).to_contain_text("1 page")
        expect(code_cell(page, "table = invoices.mistral.ocr").locator("table").last).to_contain_text(
            "Katherine Johnson")
        assert_no_math(page)
        assert not render_problems(page)
        asked.evaluate("el => el.scrollIntoView({block: 'start'})")
        screenshot(page, "documents", readme=True)


def test_tool_calls_and_reasoning_show_as_collapsed_blocks(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("tools.ipynb")
    with artifacts_on_failure(page, lab, "tools"):
        watch_render_problems(page)
        watch_output(page, "--think high")
        run_all(page)
        wait_for_run(page, "%mistral usage")

        # Each tool call is a collapsed block under the answer; Lab's sanitiser keeps them.
        asked = code_cell(page, "-o summary").locator(".jp-RenderedHTMLCommon").filter(
            has_text="Offline answer")
        blocks = asked.locator("details.mistral-tool")
        expect(blocks).to_have_count(2)
        expect(blocks.locator("summary").first).to_contain_text(re.compile(r"⚙ \w+\(column='price'"))
        expect(blocks.locator("table")).not_to_be_visible()  # collapsed
        expect(asked.locator("sub"), TYPESET_HINT).to_contain_text("2 steps, 2 tool calls")
        expect(code_cell(page, "-o summary").locator("img")).to_have_count(1)  # the tool's plot

        # The reasoning streamed into an open block before the answer, then folded above it.
        states = watched_states(page)
        alone = [s for s in states if "Reasoning" in s and "Offline answer" not in s]
        assert len(set(alone)) >= 2, f"the reasoning did not stream: {states[:6]}"
        thought = code_cell(page, "--think high").locator(".jp-RenderedHTMLCommon").filter(
            has_text="Offline answer")
        reasoning = thought.locator("details.mistral-reasoning")
        expect(reasoning).to_have_count(1)
        expect(reasoning).not_to_have_attribute("open", re.compile(".*"))
        expect(reasoning.locator("summary")).to_have_text(re.compile(r"Reasoning · \d+ tokens"))
        expect(thought.locator("sub"), TYPESET_HINT).to_contain_text(re.compile(r"\(\d+ thinking\)"))
        assert_no_math(page)
        assert not render_problems(page)

        # Opened, for the README: the follow-up's calls and the reasoning above its answer.
        follow = code_cell(page, "Now plot the qty").locator(".jp-RenderedHTMLCommon").filter(
            has_text="Offline answer")
        follow.locator("details.mistral-tool summary").first.click()
        expect(follow.locator("details.mistral-tool[open]")).to_have_count(1)
        reasoning.locator("summary").click()
        expect(reasoning).to_have_attribute("open", "")
        expect(reasoning).to_contain_text("Offline reasoning trace")
        # Opened, it reads as an aside: muted and indented, unlike the answer under it.
        look = reasoning.evaluate("""el => {
            const aside = el.querySelector('p'), answer = el.parentElement.querySelector(':scope > p');
            const at = p => [getComputedStyle(p).color, p.getBoundingClientRect().left];
            return [at(aside), at(answer)];
        }""")
        (aside_color, aside_left), (answer_color, answer_left) = look
        assert aside_color != answer_color and aside_left > answer_left + 10, look
        page.set_viewport_size({"width": 1280, "height": 1180})
        follow.locator("details.mistral-tool").first.evaluate(
            "el => el.scrollIntoView({block: 'start'})")
        screenshot(page, "tools", readme=True)


def test_answers_with_sources_show_numbered_links_blocks_and_pictures(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("research.ipynb")
    with artifacts_on_failure(page, lab, "research"):
        watch_render_problems(page)
        run_all(page)
        wait_for_run(page, "%mistral usage")
        searched = code_cell(page, "--tools web_search -o found").locator(".jp-RenderedHTMLCommon").filter(
            has_text="Offline answer")
        # Numbered sources under the answer, each title a link to its (offline) page.
        links = searched.locator("ol li a")
        expect(links).to_have_count(6)
        for href in links.evaluate_all("links => links.map(a => a.getAttribute('href'))"):
            assert href.startswith("https://search.offline.invalid/"), href
        expect(searched).to_contain_text("⁽¹⁾")
        # The searches are collapsed blocks; the footer counts them and keeps their cost unknown.
        blocks = searched.locator("details.mistral-tool")
        expect(blocks).to_have_count(2)
        expect(blocks.first.locator("summary")).to_contain_text("web_search · “gradient boosting”")
        expect(searched.locator("sub"), TYPESET_HINT).to_contain_text(
            re.compile(r"2 searches · \$0\.\d+ \+ tools: unknown"))
        cited = code_cell(page, "--library course -o cited").locator(".jp-RenderedHTMLCommon").filter(
            has_text="Offline answer")
        expect(cited.locator("ol li").first).to_contain_text("week2.pdf")
        expect(cited.locator("ol li a")).to_have_count(0)  # a document has no address to link
        drawn = code_cell(page, "--tools image_generation")
        expect(drawn.locator(".jp-RenderedImage img")).to_have_count(1)
        ran = code_cell(page, "--tools code_interpreter").locator("details.mistral-tool")
        expect(ran.locator("summary")).to_contain_text("runs on Mistral's servers, not in this kernel")
        assert_no_math(page)
        assert not render_problems(page)
        # Opened, for the README: the answer, its sources and one search.
        blocks.first.locator("summary").click()
        expect(searched.locator("details.mistral-tool[open]")).to_have_count(1)
        page.set_viewport_size({"width": 1280, "height": 1180})
        code_cell(page, "--tools web_search -o found").evaluate(
            "el => el.scrollIntoView({block: 'start'})")
        screenshot(page, "research", readme=True)


def test_model_text_never_runs_in_the_page(lab, notebook):
    from playwright.sync_api import expect

    page = notebook(XSS_NOTEBOOK)
    with artifacts_on_failure(page, lab, "xss"):
        watch_render_problems(page)
        run_all(page)
        wait_for_run(page, "%mistral chat xss")

        # 1. A --no-history cell: every payload came back in an answer and shows as text.
        answers = code_cell(page, "for prompt in PROMPTS").locator(
            ".jp-RenderedHTMLCommon").filter(has_text="Offline answer from")
        expect(answers).to_have_count(len(quotable_prompts()))
        shown = " ".join(answers.all_inner_texts())
        for text in ('<img src=x onerror="window.__xss1=1">', "<script>window.__xss2=1</script>",
                     "<svg onload=window.__xss3=1></svg>", "<IMG SRC=x OnErRoR=window.__xss15=1>"):
            assert text in shown, f"{text!r} is not shown as text"

        # 2. Prices stay text, formulas are typeset, and the footer has this call's figures.
        prices = code_cell(page, "Prices $5 and $10").locator(".jp-RenderedHTMLCommon")
        expect(prices.locator(".mathjax_process mjx-container")).not_to_have_count(0)
        expect(prices).to_contain_text("Prices $5 and $10;")
        typeset = page.locator(".jp-Notebook .jp-OutputArea-output mjx-container")
        in_math = page.locator(".jp-Notebook .jp-OutputArea-output .mathjax_process mjx-container")
        assert typeset.count() == in_math.count() >= 2, "math typeset outside a formula"
        ledger = json.loads(code_cell(page, "ledger.records").locator(
            ".jp-OutputArea-output").inner_text())
        footer = prices.locator("sub").inner_text()
        figures = re.search(r"([\d,]+) in / ([\d,]+) out · \$([\d.,]+) · .* · "
                            r"session \$([\d.,]+) over (\d+) calls", footer)
        assert figures, f"no figures in the footer {footer!r}"
        assert (int(figures[1].replace(",", "")), int(figures[2].replace(",", ""))) == (
            ledger["in"], ledger["out"])
        price = list_price(ledger["model"])
        assert_cost_shown(figures[3], (ledger["in"] * price["input"]
                                       + ledger["out"] * price["output"]) / 1e6)
        assert_cost_shown(figures[4], ledger["session"])
        assert int(figures[5]) == ledger["calls"] > 1

        # 3. The chat panel: the cell's turn (prompt: the whole corpus), then one typed in it.
        chat = code_cell(page, "%mistral chat xss").locator(".jp-Cell-outputArea")
        history = chat.locator(".widget-output").nth(0)
        expect(history).to_contain_text("<script>window.__xss2=1</script>")
        expect(chat.locator(".widget-html").first).to_contain_text(f"system: {SYSTEM}")
        typed = "\n\n".join(text for _, text in reversed(PAYLOADS))
        chat.locator("textarea").fill(typed)
        chat.get_by_role("button", name="Send").click()
        expect(history.locator(".jp-RenderedHTMLCommon").filter(
            has_text="Offline answer")).to_have_count(2)
        expect(chat.locator(".widget-html").last).to_contain_text(FOOTER)

        # 4. The chat's history table.
        table = run_new_cell(page, "%mistral history -c xss").locator(".jp-OutputArea-output")
        expect(table.locator("table")).to_have_count(1)
        expect(table).to_contain_text('<img src=x onerror="window.__xss1=1">')

        # Nothing ran, and nothing live was ever in an output, even mid-stream.
        ran = page.evaluate("(flags) => flags.filter(f => window[f] !== undefined)",
                            [SYSTEM_FLAG, *FLAGS, "__x"])
        assert not ran, f"payloads ran in the page: {ran}"
        problems = render_problems(page)
        assert not problems, f"live markup reached the outputs: {problems}"
        show_end(chat, history)
        screenshot(page, "xss")
