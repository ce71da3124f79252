"""JupyterLab on loopback with throwaway settings, driven in Debian's Chromium by Playwright.

Follows the recipe in TESTING.md: a fresh config, runtime, settings, workspaces and
IPython directory per server; the news pop-up off; a fixed free port with
`--port-retries=0`; no `MISTRAL_API_KEY`; notebooks served from temporary copies.

The offline server's fault plan is set by an IPython startup file in that fresh
IPython directory rather than by a cell added to the notebook, so the notebooks
(and the README screenshots taken of them) are exactly what users open.

The JupyterLab extension is always this checkout's (`lab/`): its built front end is
put first on the data path and its server extension enabled in the fresh config, so
the tests run what `pip install -e ".[lab]"` gives, installed or not.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_PACKAGE = ROOT / "lab"
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# This 2-core machine is often loaded: waits are for conditions, with generous deadlines.
TIMEOUT_MS = 90_000
START_TIMEOUT_S = 90.0

SETTINGS = {
    # No news or update check (the only network Lab would try) and no pop-up over cells.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    # Every cell in the DOM, so that locators find cells outside the viewport.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium() -> str:
    """Chromium's path; skips without one unless MISTRAL_MAGIC_REQUIRE_BROWSER is set (CI)."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    problem = None if path else "no Chromium (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = problem or 'no playwright (pip install -e ".[test]")'
    if problem:
        if os.environ.get("MISTRAL_MAGIC_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests required but {problem}", pytrace=False)
        pytest.skip(problem)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A running `jupyter lab` serving `root`; `stop()` ends it and its kernels."""

    def __init__(self, base: Path, faults: dict | None = None, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None):
        """`args` go to `jupyter lab` (e.g. `--MistralCompletion.daily_cap_usd=...`), `env`
        into its environment."""
        self.base = base
        self.root = base / "notebooks"
        self.log_path = base / "lab.log"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.root.mkdir(parents=True)
        environment = {k: v for k, v in os.environ.items() if k != "MISTRAL_API_KEY"}
        environment.update(env or {})
        for var, name in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                          ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                          ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
            environment[var] = str(base / name)
            (base / name).mkdir()
        self._use_this_checkouts_extension(environment)
        for name, values in SETTINGS.items():
            path = base / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        if faults:
            startup = base / "ipython" / "profile_default" / "startup" / "50-offline-faults.py"
            startup.parent.mkdir(parents=True)
            startup.write_text(
                "import mistral_magic.calls.backend\n"
                f"mistral_magic.calls.backend.offline_server().set_faults({faults!r})\n"
            )
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser",
             "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             "--LabApp.expose_app_in_browser=True", *args],
            cwd=self.root, env=environment, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the kernels too
        )

    def _use_this_checkouts_extension(self, env: dict[str, str]) -> None:
        """The front end first on the data path, the server extension imported and enabled."""
        data = self.base / "data" / "labextensions"
        data.mkdir(parents=True)
        (data / "mistral-magic-lab").symlink_to(LAB_PACKAGE / "mistral_magic_lab" / "labextension")
        env["JUPYTER_PATH"] = os.pathsep.join(
            [str(self.base / "data"), *filter(None, [env.get("JUPYTER_PATH")])])
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), str(LAB_PACKAGE), *filter(None, [env.get("PYTHONPATH")])])
        (self.base / "config" / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"mistral_magic_lab": True}}}))

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def add_notebook(self, name: str) -> Path:
        """A temporary copy of notebooks/`name` to serve (Lab may autosave into it)."""
        return Path(shutil.copy(NOTEBOOKS / name, self.root / name))

    def write_notebook(self, name: str, sources: list[str]) -> Path:
        """A notebook of code cells made by a test (one that users never open)."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        path = self.root / name
        nbformat.write(nb, path)
        return path

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.process.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer in {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.2)  # the server is starting; poll again

    def shutdown_kernels(self) -> None:
        """Shut down every kernel the server runs (a finished test's kernel costs CPU).

        A listing once answered 500 in CI just after a test's page closed (a kernel changing
        state): it is asked again a moment later, with the server's log if it keeps failing.
        A kernel gone already (404) is fine.
        """
        for attempt in range(10):
            try:
                with urllib.request.urlopen(self.url("api/kernels"), timeout=30) as response:
                    kernels = json.load(response)
                break
            except urllib.error.HTTPError as error:
                if error.code < 500 or attempt == 9:
                    raise RuntimeError(f"listing kernels: {error}\n{self.log()[-3000:]}") from error
                time.sleep(0.5)
        for kernel in kernels:
            request = urllib.request.Request(self.url(f"api/kernels/{kernel['id']}"),
                                             method="DELETE")
            try:
                urllib.request.urlopen(request, timeout=30).close()
            except urllib.error.HTTPError as error:
                if error.code != 404:
                    raise

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(15)
        # Kernels are in the same group; a stubborn one must not outlive the test.
        with _suppress_lookup():
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


@contextmanager
def _suppress_lookup() -> Iterator[None]:
    try:
        yield
    except ProcessLookupError:  # the group is already gone
        pass


@contextmanager
def browser(profile_dir: Path):
    """A headless Chromium context with generous default timeouts; always closed."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile_dir), executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


# -- driving a notebook ------------------------------------------------------------------


def open_notebook(context, lab: Lab, name: str):
    """A new page with notebook `name` open (its own workspace) and its kernel connected."""
    page = context.new_page()
    page.goto(lab.url(f"lab/workspaces/{Path(name).stem}/tree/{name}"))
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for()
    # The kernel looks idle before it is connected; Run All would then run nothing.
    page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for()
    page.locator('.jp-DebuggerBugButton[aria-disabled="false"]').wait_for()
    # Fold the file browser away: the notebook gets the width (and the screenshots too).
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    page.locator("#jp-left-stack").wait_for(state="hidden")
    return page


def run_all(page) -> None:
    """Run → Run All Cells (Lab 4 has no default shortcut for it)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator('li[data-command="runmenu:run-all"]').click()


_FIND_CELL = """(part) => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
    .filter(c => (c.querySelector('.cm-content')?.textContent ?? '').includes(part))"""


def wait_for_run(page, last_cell: str) -> None:
    """Wait until no cell is queued or running and the cell containing `last_cell` has run."""
    page.wait_for_function(
        f"""(last) => {{
            const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
            const prompt = c => c.querySelector('.jp-InputArea-prompt')?.textContent ?? '';
            if (cells.some(c => prompt(c).includes('*'))) return false;
            const target = ({_FIND_CELL})(last);
            return target.length > 0 && target.every(c => /\\[\\d+\\]/.test(prompt(c)));
        }}""",
        arg=last_cell,
    )


def code_cell(page, source_part: str):
    """The first code cell whose source contains `source_part` (within one line)."""
    return page.locator(".jp-Notebook .jp-CodeCell").filter(
        has=page.locator(".cm-content", has_text=source_part)
    ).first


def watch_output(page, source_part: str) -> None:
    """Record every distinct text the cell's output shows from now on (`watched_states`)."""
    page.evaluate(
        f"""(part) => {{
            const area = ({_FIND_CELL})(part)[0].querySelector('.jp-Cell-outputArea');
            const states = window.__outputStates = [];
            new MutationObserver(() => {{
                const text = area.innerText;
                if (states[states.length - 1] !== text) states.push(text);
            }}).observe(area, {{childList: true, subtree: true, characterData: true}});
        }}""",
        source_part,
    )


def watched_states(page) -> list[str]:
    return page.evaluate("window.__outputStates")


def run_new_cell(page, code: str):
    """Type `code` into a new cell at the end and run it with Shift+Enter; the cell's locator."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    count = cells.count()
    last = cells.nth(count - 1)  # not `.last`: running the cell appends another
    # Shift+Enter on the last cell leaves an empty cell below it: use that one.
    if "jp-CodeCell" in (last.get_attribute("class") or "") and not last.locator(
            ".cm-content").text_content():
        cell = last
    else:
        last.locator(".jp-InputArea-prompt").click()
        page.keyboard.press("Escape")
        page.keyboard.press("b")  # command mode: insert a cell below
        cell = cells.nth(count)
    cell.locator(".cm-content").click()
    page.keyboard.insert_text(code)  # no key events: the editor's bracket closing stays out
    page.keyboard.press("Shift+Enter")
    cell.locator(".jp-InputArea-prompt").filter(has_text=re.compile(r"\[\d+\]")).wait_for()
    return cell


# -- what rendered outputs may hold ------------------------------------------------------

_RENDER_PROBLEMS = """() => {
    // Rendered outputs only: Lab's own UI (toolbar icons, widget inputs) is not model text.
    const scopes = document.querySelectorAll(
        '.jp-OutputArea-output .jp-RenderedHTMLCommon, .jp-OutputArea-output .widget-html-content');
    const forbidden = new Set(['script', 'iframe', 'frame', 'frameset', 'svg', 'math', 'object',
        'embed', 'form', 'img', 'link', 'meta', 'base', 'input', 'textarea', 'button', 'select',
        'video', 'audio', 'source', 'template', 'marquee', 'applet']);
    const urls = new Set(['href', 'src', 'action', 'formaction', 'data', 'xlink:href', 'poster',
        'background', 'srcset', 'cite']);
    const bad = [];
    for (const scope of scopes) {
        for (const el of [scope, ...scope.querySelectorAll('*')]) {
            const tag = el.tagName.toLowerCase();
            // MathJax's own accessible copy of a typeset formula is MathML.
            if (forbidden.has(tag) && !(tag === 'math' && el.closest('mjx-container'))) {
                bad.push(`<${tag}>`);
            }
            // Collapsed blocks are render's own (reasoning, tool calls), never a model's.
            if (tag === 'details' && !['mistral-reasoning', 'mistral-tool', 'mistral-tool error']
                    .includes(el.getAttribute('class'))) bad.push('<details> not made by render');
            if (tag === 'style' && /__xss|javascript|expression/i.test(el.textContent)) {
                bad.push(`<style>${el.textContent.slice(0, 80)}`);
            }
            for (const attr of el.attributes) {
                const name = attr.name.toLowerCase();
                const value = attr.value.replace(/[\\x00-\\x20\\x7f]/g, '').toLowerCase();
                const scheme = /^([^/?#]*):/.exec(value);
                if (name.startsWith('on') || name === 'srcdoc') bad.push(`<${tag} ${name}>`);
                else if (urls.has(name) && scheme && !['http', 'https', 'mailto'].includes(scheme[1]))
                    bad.push(`<${tag} ${name}=${attr.value.slice(0, 80)}>`);
                else if (name === 'style' && /__xss|javascript|expression|url\\(/.test(value))
                    bad.push(`<${tag} style=${attr.value.slice(0, 80)}>`);
            }
        }
    }
    return bad;
}"""


def watch_render_problems(page) -> None:
    """From now on, note anything live that appears in a rendered output, even for a moment."""
    page.evaluate(f"""() => {{
        const check = {_RENDER_PROBLEMS};
        const seen = window.__renderProblems = [];
        new MutationObserver(() => {{
            for (const problem of check()) if (!seen.includes(problem)) seen.push(problem);
        }}).observe(document.querySelector('.jp-Notebook'),
                    {{childList: true, subtree: true, attributes: true}});
    }}""")


def render_problems(page) -> list[str]:
    """What the rendered outputs hold now, and what `watch_render_problems` noted before."""
    now = page.evaluate(_RENDER_PROBLEMS)
    return sorted(set(page.evaluate("window.__renderProblems || []") + now))


# -- artifacts ---------------------------------------------------------------------------


def screenshot(page, name: str, readme: bool = False) -> Path:
    """Save a screenshot under test-artifacts/ (and docs/screenshots/ for the README)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if readme and os.environ.get("MISTRAL_MAGIC_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / f"{name}.png")
    return path


@contextmanager
def artifacts_on_failure(page, lab: Lab, name: str) -> Iterator[None]:
    """On a failure inside, keep a screenshot and the server log in test-artifacts/."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"))
        except Exception:  # the page may be what broke; the log still matters
            pass
        (ARTIFACTS / f"{name}-lab.log").write_text(lab.log())
        raise
