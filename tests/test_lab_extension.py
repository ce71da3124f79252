"""The JupyterLab extension (`lab/`) in a real JupyterLab, in Chromium.

Codestral completion as you type (switched on from the status bar, ghost text, Tab),
the kernel's spend in the status bar (live while an answer streams, following the
notebook in view, its detail on click), and generated cells that replace themselves.
`browser_lab` has the setup; the extension is this checkout's.
"""

from __future__ import annotations

import json
import re

import pytest
from browser_lab import (
    Lab,
    artifacts_on_failure,
    browser,
    chromium,
    code_cell,
    open_notebook,
    run_all,
    screenshot,
    wait_for_run,
)

from mistral_magic.store import Store

pytestmark = pytest.mark.browser

# Answers of 300 tokens at 10 ms a token: a stream lasts about 3 s.
STREAMING = {"token_delay_ms": 10, "answer_tokens": 300}
SETUP = "%load_ext mistral_magic\n%config MistralMagics.budget_usd = 0.5"
CODE_CELL = "%%mistral --format code\nWrite a function that adds two numbers."
GHOST = ".jp-GhostText"

CELLS = """() => jupyterapp.shell.currentWidget.content.model.sharedModel.cells.map(c => ({
    id: c.id, source: c.getSource(), mark: c.getMetadata('mistral_magic') ?? null}))"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium()  # skip (or fail in CI) before starting anything
    server = Lab(tmp_path_factory.mktemp("lab-extension"), faults=STREAMING)
    try:
        server.write_notebook("complete.ipynb", [
            SETUP, "%%mistral\nName three uses of the mean.",
            "import statistics\n\ndata = [3, 1, 4, 1, 5]", ""])
        server.write_notebook("spend.ipynb", [SETUP, "%%mistral\nExplain the central limit theorem."])
        server.write_notebook("plain.ipynb", ["1 + 1"])
        server.write_notebook("generated.ipynb", ["%load_ext mistral_magic", CODE_CELL])
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
    pages = []

    def open_(name: str):
        pages.append(open_notebook(context, lab, name))
        return pages[-1]

    yield open_
    for page in pages:
        page.close()
    lab.shutdown_kernels()


def test_codestral_ghost_text_appears_as_you_type_and_tab_accepts_it(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("complete.ipynb")
    with artifacts_on_failure(page, lab, "lab-completion"):
        run_all(page)
        wait_for_run(page, "import statistics")
        spend = page.locator(".jp-MistralMagic-spend")
        expect(spend).to_have_text(re.compile(r"^Mistral: \$0\.\d+ / \$0\.50 · 1 call$"))

        switch = page.locator(".jp-MistralMagic-completion")
        expect(switch).to_have_text("Codestral: off")  # opt-in: each completion is paid
        switch.click()
        expect(switch).to_have_text(re.compile(r"^Codestral: on · \$\d[\d.]* of \$0\.50 today$"))
        saved = lab.base / "settings" / "@jupyterlab" / "completer-extension" / \
            "inline-completer.jupyterlab-settings"
        text = "\n".join(line for line in saved.read_text().splitlines()
                         if not line.strip().startswith("//"))  # JSON5 with comments
        assert json.loads(text)["providers"]["mistral-magic:codestral"]["enabled"] is True

        cell = page.locator(".jp-Notebook .jp-CodeCell").last
        cell.locator(".cm-content").click()
        page.keyboard.type("def mean(values):", delay=60)
        ghost = page.locator(GHOST)
        expect(ghost).to_contain_text("offline completion by codestral-latest")
        expect(switch).to_have_text(re.compile(r"^Codestral: on · \$0\.\d+ of \$0\.50 today$"))
        screenshot(page, "lab", readme=True)

        page.keyboard.press("Tab")
        expect(ghost).to_have_count(0)
        source = page.evaluate(
            "() => jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel.getSource()")
        assert source.startswith("def mean(values):\n    \"\"\"Mean (offline completion by")
        assert source.rstrip().endswith("return result")

        # The completion was asked through the server extension: a ledger row of the folder.
        with Store(lab.root / ".mistral_magic" / "store.sqlite") as store:
            rows = store.ledger.frame()
        done = rows[(rows["kind"] == "completion") & (rows["status"] == "ok")]
        assert len(done) >= 1 and (done["session"] == "jupyterlab").all()

        # The page's own login cookie without the XSRF token is refused: no cross-site POST.
        status = page.evaluate("""async () => (await fetch('/mistral-magic/completion', {
            method: 'POST', body: JSON.stringify({prefix: 'x', suffix: '', path: 'a.ipynb'})
        })).status""")
        assert status == 403


def test_the_kernels_spend_is_in_the_status_bar_live_and_follows_the_notebook(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("spend.ipynb")
    with artifacts_on_failure(page, lab, "lab-spend"):
        page.evaluate("""() => {
            const states = window.__spendStates = [];
            const bar = document.querySelector('#jp-main-statusbar');
            new MutationObserver(() => {
                const item = bar.querySelector('.jp-MistralMagic-spend');
                const text = item && item.offsetParent !== null ? item.textContent : '';
                if (states[states.length - 1] !== text) states.push(text);
            }).observe(bar, {childList: true, subtree: true, characterData: true,
                             attributes: true});
        }""")
        run_all(page)
        wait_for_run(page, "central limit")
        spend = page.locator(".jp-MistralMagic-spend")
        expect(spend).to_have_text(re.compile(r"^Mistral: \$0\.\d+ / \$0\.50 · 1 call$"))
        states = page.evaluate("window.__spendStates")
        # While the answer streamed: no call recorded yet, its worst case held.
        during = [s for s in states if re.search(r"0 calls · running \(\$0\.\d+ held\)$", s)]
        assert during, f"the status bar did not follow the streamed answer: {states}"
        assert states.index(during[0]) < len(states) - 1

        spend.click()
        detail = page.locator(".jp-Dialog .jp-MistralMagic-detail")
        expect(detail.locator("td").first).to_contain_text("mistral-small")
        expect(detail).to_contain_text("of the $0.50 budget left")
        page.locator(".jp-Dialog").get_by_role("button", name="Close").click()

        # Another notebook in view (its kernel has no mistral_magic): the item goes away,
        # and comes back with this notebook.
        page.evaluate(
            "() => { void jupyterapp.commands.execute('docmanager:open', {path: 'plain.ipynb'}); }")
        page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').last.wait_for()
        expect(spend).to_be_hidden()
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="spend.ipynb").click()
        expect(spend).to_be_visible()
        expect(spend).to_have_text(re.compile(r"· 1 call$"))


def cells(page) -> list[dict]:
    return page.evaluate(CELLS)


def run_cell(page, index: int) -> None:
    """Run one cell without moving on, and wait until its new execution count shows."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    before = cell.locator(".jp-InputArea-prompt").inner_text()
    page.evaluate(f"""async () => {{
        const panel = jupyterapp.shell.currentWidget;
        panel.content.activeCellIndex = {index};
        await jupyterapp.commands.execute('notebook:run-cell');
    }}""")
    page.wait_for_function(
        """([index, before]) => {
            const prompt = document.querySelectorAll('.jp-Notebook .jp-Cell')[index]
                .querySelector('.jp-InputArea-prompt').textContent;
            return prompt !== before && /\\[\\d+\\]/.test(prompt);
        }""", arg=[index, before])


def test_a_generated_cell_is_replaced_not_added_again(lab, notebook):
    from playwright.sync_api import expect

    page = notebook("generated.ipynb")
    with artifacts_on_failure(page, lab, "lab-generated"):
        run_all(page)
        wait_for_run(page, "--format code")
        code_cell(page, "--format code").locator(".jp-RenderedHTMLCommon pre").wait_for()
        first = cells(page)
        assert len(first) == 3, first
        maker, generated = first[1], first[2]
        assert "def " in generated["source"]
        assert generated["mark"]["generated_by"] == maker["id"]

        run_cell(page, 1)  # again: the generated cell is updated in place
        again = cells(page)
        assert len(again) == 3 and again[2]["mark"]["generated_by"] == maker["id"]
        assert "def " in again[2]["source"]

        # Restart & Run All (the quickstart's case): still one generated cell.
        before = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputArea-prompt").inner_text()
        page.evaluate("() => { void jupyterapp.commands.execute('notebook:restart-run-all'); }")
        page.locator(".jp-Dialog .jp-mod-accept").click()
        # The run may be over before a busy indicator could be seen: wait for the new count.
        page.wait_for_function(
            """(before) => {
                const prompts = [...document.querySelectorAll('.jp-Notebook .jp-Cell .jp-InputArea-prompt')]
                    .map(p => p.textContent);
                return !prompts.some(p => p.includes('*')) && prompts[1] !== before
                    && /\\[\\d+\\]/.test(prompts[1]);
            }""", arg=before)
        wait_for_run(page, "--format code")
        page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for()
        assert len(cells(page)) == 3

        # A generated cell the user edited is kept: the new code goes in a new cell.
        page.evaluate("""() => {
            const cell = jupyterapp.shell.currentWidget.content.model.sharedModel.cells[2];
            cell.setSource('# my own version\\n' + cell.getSource());
        }""")
        run_cell(page, 1)
        edited = cells(page)
        assert len(edited) == 4, edited
        assert edited[2]["mark"]["generated_by"] == maker["id"]
        assert not edited[2]["source"].startswith("# my own version")
        assert edited[3]["source"].startswith("# my own version")
        expect(page.locator(".Toastify__toast")).to_contain_text("was edited, so it was kept")
