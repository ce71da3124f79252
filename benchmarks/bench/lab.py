"""Codestral completion as you type, in a real JupyterLab: last keystroke to ghost text.

    python benchmarks/run.py --only lab [--quick]

JupyterLab (this checkout's extension, completion switched on) runs in headless
Chromium; each trial types a line (`def fN(values):`, 60 ms a key) into a new cell and
measures, in the page, the time from the last keystroke to the ghost text, and the
round trip of the completion request it made. Every other trial pauses mid-line
(`PAUSE_MS`, past the debounce) so that a request is under way when typing resumes:
its answer, for an older text, must never show. It also measures the round trip (browser → server extension → FIM →
back, from the browser's resource timing). FIM goes to an offline server in this
process paced like a hosted one (`FIM_LATENCY_MS` a request: an assumption, not a
measurement of La Plateforme). The target: the median wait is at most the round trip
plus the debounce plus 100 ms, no ghost text ever shown for a stale prefix, and one
FIM call per typed line.

`bench_lab(quick) -> dict` and `lab_rows(results) -> list[Row]` are what
`benchmarks/run.py` calls.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from .harness import Row

HERE = Path(__file__).resolve().parent
# The browser harness of the tests (JupyterLab in Chromium) serves the benchmark too.
sys.path.insert(0, str(HERE.parents[1] / "tests"))

FIM = "/v1/fim/completions"
FIM_LATENCY_MS = 150
KEY_DELAY_MS = 60
DEBOUNCE_MS = 350  # the provider's default debouncerDelay (lab/src/provider.ts)
PAUSE_MS = DEBOUNCE_MS + 80  # mid-line: a request goes, and is still under way
TARGET_OVERHEAD_MS = 100

_WATCH = """() => {
    window.__lastKey = 0;
    window.__ghosts = [];
    document.addEventListener('keydown', () => { window.__lastKey = performance.now(); }, true);
    new MutationObserver(() => {
        const ghost = document.querySelector('.jp-GhostText');
        const text = ghost ? ghost.textContent : '';
        const seen = window.__ghosts;
        if (text && (!seen.length || seen[seen.length - 1].text !== text)) {
            seen.push({t: performance.now(), text, lastKey: window.__lastKey});
        }
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""

_NEW_CELL = """async () => {
    window.__trialStart = performance.now();
    await jupyterapp.commands.execute('notebook:insert-cell-below');
    await jupyterapp.commands.execute('notebook:enter-edit-mode');
}"""

_TRIAL = """(expected) => {
    const ghost = window.__ghosts.find(g => g.text.includes(expected) && g.t > window.__lastKey);
    if (!ghost) return null;
    const requests = performance.getEntriesByType('resource').filter(
        e => e.name.includes('/mistral-magic/completion') && e.startTime >= window.__lastKey);
    const last = requests[requests.length - 1];
    return {wait: ghost.t - window.__lastKey,
            roundTrip: last ? last.responseEnd - last.startTime : null,
            stale: window.__ghosts.filter(g => g.t > window.__trialStart
                && (g.t <= window.__lastKey || !g.text.includes(expected)))
                .map(g => g.text.slice(0, 60))};
}"""


def bench_lab(quick: bool) -> dict:
    """Type `trials` lines; every trial's wait, round trip, stale ghosts and FIM calls."""
    try:
        from browser_lab import Lab, browser, chromium, open_notebook
        chromium()
    except BaseException as exc:  # pytest's skip: no Chromium or no playwright here
        return {"skipped": str(exc) or type(exc).__name__}
    from mistral_magic.offline import OfflineServer

    trials = 4 if quick else 12
    out = {"trials": [], "fim_latency_ms": FIM_LATENCY_MS, "debounce_ms": DEBOUNCE_MS,
           "key_delay_ms": KEY_DELAY_MS}
    with tempfile.TemporaryDirectory(prefix="mistral-magic-lab-bench-") as base, \
            OfflineServer(faults={"latency_ms": FIM_LATENCY_MS}) as fim:
        lab = Lab(Path(base) / "lab", args=(f"--MistralCompletion.server_url={fim.url}",),
                  env={"MISTRAL_SERVER_KEY": fim.api_key})
        try:
            _enable_completion(lab)
            lab.write_notebook("typing.ipynb", ["import statistics"])
            lab.wait_ready()
            with browser(Path(base) / "profile") as context:
                page = open_notebook(context, lab, "typing.ipynb")
                page.evaluate(_WATCH)
                for i in range(trials + 1):  # the first warms the server up: not counted
                    page.evaluate(_NEW_CELL)
                    calls = fim.request_count(FIM)
                    if i % 2:
                        page.keyboard.type(f"def f{i}(val", delay=KEY_DELAY_MS)
                        page.wait_for_timeout(PAUSE_MS)
                        page.keyboard.type("ues):", delay=KEY_DELAY_MS)
                    else:
                        page.keyboard.type(f"def f{i}(values):", delay=KEY_DELAY_MS)
                    expected = f"F{i} (offline completion"
                    page.wait_for_function(f"() => ({_TRIAL})({expected!r}) !== null")
                    trial = page.evaluate(_TRIAL, expected)
                    trial["fim_calls"] = fim.request_count(FIM) - calls
                    trial["paused"] = bool(i % 2)
                    page.keyboard.press("Escape")
                    if i:
                        out["trials"].append(trial)
                page.close()
        finally:
            lab.stop()
    return out


def _enable_completion(lab) -> None:
    import json

    path = (lab.base / "settings" / "@jupyterlab" / "completer-extension" /
            "inline-completer.jupyterlab-settings")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"providers": {"mistral-magic:codestral": {"enabled": True}}}))


def lab_rows(results: dict) -> list[Row]:
    """The table's rows: wait, its ratio, stale ghosts and calls per line."""
    return [Row(*row) for row in _rows(results)]


def _rows(results: dict) -> list[tuple[str, ...]]:
    if "skipped" in results:
        return [("lab: last keystroke to ghost text", f"skipped ({results['skipped']})",
                 "", "", "", "")]
    trials = results["trials"]
    waits = [t["wait"] for t in trials]
    trips = [t["roundTrip"] for t in trials if t["roundTrip"] is not None]
    budget = statistics.median(trips) + results["debounce_ms"] + TARGET_OVERHEAD_MS
    ratios = [t["wait"] / (t["roundTrip"] + results["debounce_ms"]) for t in trials
              if t["roundTrip"]]
    stale = sum(len(t["stale"]) for t in trials)
    calls = [t["fim_calls"] for t in trials if not t["paused"]]
    paused = [t["fim_calls"] for t in trials if t["paused"]]
    wait = statistics.median(waits)
    return [
        ("lab: last keystroke to ghost text",
         f"round trip {statistics.median(trips):.0f} ms + debounce {results['debounce_ms']} ms",
         f"{wait:.0f} ms", f"{min(waits):.0f}-{max(waits):.0f} ms ({len(waits)} runs)",
         f"{max(waits):.0f} ms",
         f"<= {budget:.0f} ms (round trip + debounce + {TARGET_OVERHEAD_MS} ms): "
         f"{'met' if wait <= budget else 'NOT met'}"),
        ("  same, as a ratio to round trip + debounce", "",
         f"{statistics.median(ratios):.3f}x" if ratios else "", "", "", "printed"),
        ("  stale ghost texts shown / FIM calls per typed line",
         f"typing at {results['key_delay_ms']} ms a key; "
         f"{len(paused)} lines paused {PAUSE_MS} ms mid-way ({sum(paused)} calls)",
         f"{stale} / {statistics.median(calls):g}", f"calls {min(calls)}-{max(calls)}", "",
         "0 / 1"),
    ]

