"""The chat box follows the newest message, and a saved notebook shows the widgets' final state.

In a real JupyterLab in Chromium (`browser_lab`): the teaching notebook runs, questions go
through the chat box, the notebook is saved from Lab (which by default keeps no widget
state), converted with nbconvert, and the HTML is opened offline, where no widget can
render: the meter's and the chat's fallbacks must hold what Lab showed live at the end.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from browser_lab import (
    Lab,
    artifacts_on_failure,
    browser,
    chromium,
    code_cell,
    open_notebook,
    run_all,
    run_new_cell,
    screenshot,
    wait_for_run,
)

from mistral_magic.show.answer import INTERRUPTED_MARK
from mistral_magic.show.display import CURSOR

pytestmark = pytest.mark.browser

STREAMING = {"token_delay_ms": 10}
LONG_ANSWER = {"token_delay_ms": 30, "answer_tokens": 3000}
QUESTIONS = ["What is a validation set?", "And a test set?", "Why keep them apart?"]

# Whether the element matching `selector` inside the chat's transcript box is in its view.
_IN_VIEW = """([selector, index]) => {
    const box = [...document.querySelectorAll('.jp-Notebook .widget-box')]
        .find(b => getComputedStyle(b).flexDirection === 'column-reverse');
    const items = box ? box.querySelectorAll(selector) : [];
    const el = items[index < 0 ? items.length + index : index];
    if (!el) return false;
    const b = box.getBoundingClientRect(), r = el.getBoundingClientRect();
    return r.bottom > b.top + 4 && r.top < b.bottom - 4;
}"""
_BOX = """() => [...document.querySelectorAll('.jp-Notebook .widget-box')]
    .find(b => getComputedStyle(b).flexDirection === 'column-reverse')"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium()
    server = Lab(tmp_path_factory.mktemp("lab"), faults=STREAMING)
    try:
        server.add_notebook("teaching.ipynb")
        server.wait_ready()
        yield server
    finally:
        server.stop()


def in_view(page, selector: str, index: int) -> None:
    page.wait_for_function(_IN_VIEW, arg=[selector, index])


def saved_plain(lab: Lab, name: str, source: str) -> str:
    """The text/plain of the outputs the saved notebook keeps for the cell starting `source`
    ("" while the server is still writing the file: not saved yet)."""
    try:
        nb = json.loads((lab.root / name).read_text())
    except json.JSONDecodeError:
        return ""
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith(source))
    return "\n".join("".join(o.get("data", {}).get("text/plain", "")) for o in cell["outputs"])


def save_until(page, lab: Lab, name: str, done) -> None:
    """Save from Lab (Ctrl+S) until the file on disk satisfies `done` (a deadline, no sleep)."""
    deadline = time.monotonic() + 60
    while True:
        page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        page.wait_for_function(  # Lab marks the panel clean once the save is done
            "() => !document.querySelector('.jp-NotebookPanel-notebook')"
            "?.closest('.lm-Widget.jp-mod-dirty')"
            " && !document.querySelector('.lm-TabBar-tab.jp-mod-dirty')")
        if done():
            return
        assert time.monotonic() < deadline, "the saved notebook never held the final state"
        page.wait_for_timeout(500)  # the fallback follows a second after the panel settles


def test_chat_box_follows_and_the_saved_notebook_shows_the_final_state(lab, tmp_path):
    from playwright.sync_api import expect

    name = "teaching.ipynb"
    with browser(tmp_path / "profile") as context:
        page = open_notebook(context, lab, name)
        with artifacts_on_failure(page, lab, "saved"):
            run_all(page)
            wait_for_run(page, "%mistral cache export")
            chat = code_cell(page, "%mistral chat class").locator(".jp-Cell-outputArea")
            meter = code_cell(page, "%mistral meter").locator(".jp-Cell-outputArea")
            # The settings panel: the model's label whole (its price shown), and which
            # temperature applies said next to the slider.
            panel = code_cell(page, "%mistral panel").locator(".jp-Cell-outputArea")
            select = panel.locator(".widget-dropdown select")
            expect(select).to_be_visible()
            assert select.evaluate("s => s.scrollWidth <= s.clientWidth + 1"), "label cut off"
            label = select.evaluate("s => s.options[s.selectedIndex].text")
            assert re.search(r"\$[\d.]+/\$[\d.]+$", label), label
            expect(panel).to_contain_text("the model's default applies")
            history = chat.locator(".widget-output").nth(0)
            send = chat.get_by_role("button", name="Send")
            answers = history.locator(".jp-RenderedHTMLCommon").filter(has_text="Offline answer")

            # Each Send: the new question and its answer are in view, the box scrolled to them.
            for question in QUESTIONS:
                before = answers.count()
                chat.locator("textarea").fill(question)
                send.click()
                expect(answers).to_have_count(before + 1)
                expect(send).to_be_enabled()
                in_view(page, ".widget-output .jp-OutputArea-child", -1)
            box = page.evaluate_handle(_BOX)
            assert box.evaluate("b => b.scrollHeight > b.clientHeight + 100"), "no overflow to test"
            assert not page.evaluate(_IN_VIEW, [".widget-output .jp-OutputArea-child", 0])

            # Scrolled up while an answer streams: the reader's place is kept.
            run_new_cell(page, "import mistral_magic.calls.backend\n"
                               "mistral_magic.calls.backend.offline_server()"
                               f".set_faults({LONG_ANSWER!r})")
            live = chat.locator(".widget-output").nth(1)
            chat.locator("textarea").fill("Tell me everything about regularisation.")
            send.click()
            expect(live).to_contain_text(CURSOR.strip())
            page.evaluate_handle(_BOX).evaluate("b => { b.scrollTop = -b.scrollHeight; }")
            in_view(page, ".widget-output .jp-OutputArea-child", 0)
            grown = live.inner_text()
            page.wait_for_function("([el, n]) => el.innerText.length > n + 200",
                                   arg=[live.element_handle(), len(grown)])
            assert page.evaluate(_IN_VIEW, [".widget-output .jp-OutputArea-child", 0]), \
                "the box jumped away from where the reader scrolled"
            chat.get_by_role("button", name="Stop").click()
            expect(history).to_contain_text(INTERRUPTED_MARK.strip(" \n*"))
            screenshot(page, "saved-live")

            # Saved from Lab with no cell run since: the chat's fallback followed the Sends.
            last = "Tell me everything about regularisation."
            save_until(page, lab, name, lambda: last in saved_plain(lab, name, "%mistral chat"))
            # The calls Lab shows live, in the meter; a cell's end also brings the fallbacks up
            # to date, then the notebook is saved again.
            counted = run_new_cell(page, "import mistral_magic\n"
                                         "print(len(mistral_magic.session().ledger.records))")
            calls = int(counted.locator(".jp-OutputArea-output").inner_text().strip())
            expect(meter).to_contain_text(f"{calls} calls")
            save_until(page, lab, name,
                       lambda: f"{calls} calls" in saved_plain(lab, name, "%config MistralMagics"))
        page.close()
        lab.shutdown_kernels()

        html_path = tmp_path / "teaching.html"
        converted = subprocess.run(
            [sys.executable, "-m", "nbconvert", "--to", "html", "--output-dir", str(tmp_path),
             "--output", "teaching", str(lab.root / name)], capture_output=True, text=True)
        assert converted.returncode == 0, converted.stderr[-2000:]
        static = context.new_page()
        static.goto(html_path.as_uri())
        body = static.locator("body")
        meter_text = static.locator(".jp-Cell").filter(has_text="%mistral meter").first
        expect(meter_text).to_contain_text(f"{calls} calls")
        expect(meter_text.locator("table")).to_contain_text("mistral-small-latest")
        assert "0 calls" not in meter_text.inner_text()
        panel = static.locator(".jp-Cell").filter(has_text="%mistral chat class").first
        for question in [*QUESTIONS, last]:
            expect(panel).to_contain_text(question)
        expect(panel.locator("strong").filter(has_text="You")).not_to_have_count(0)  # rendered
        assert "**You**" not in panel.inner_text()
        expect(panel).to_contain_text(INTERRUPTED_MARK.strip(" \n*"))
        expect(body).not_to_contain_text("Loading widget")
        static.screenshot(path=str(tmp_path / "static.png"))
        static.close()
