"""The first cell is as quick as the SDK's first call, with and without a budget."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable

from .harness import NO_DELAYS, Row, ServerProcess, median_pair, spread_text, summary

COLD_PROMPT = "Say hello in one short sentence."
# The kernel (an InteractiveShell) exists before the first cell; the clock starts at %load_ext.
COLD_CELL = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
url, key, budget, prompt = sys.argv[1:5]
start = time.perf_counter()
shell.run_line_magic("load_ext", "mistral_magic")
if url:
    shell.run_line_magic("config", f"MistralMagics.server_url = {url!r}")
    shell.run_line_magic("config", f"MistralMagics.server_key = {key!r}")
if budget:
    shell.run_line_magic("config", f"MistralMagics.budget_usd = {float(budget)!r}")
shell.run_cell_magic("mistral", "--max-tokens 20", prompt)
elapsed = time.perf_counter() - start
import mistral_magic
last = mistral_magic.session().last  # a cached answer would not measure a first call
print(json.dumps({"s": elapsed, "status": "cached" if last.cached else last.status}))
"""
# The same fresh kernel, where a user would call the SDK instead: IPython is already loaded.
COLD_SDK = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
from mistralai.client import Mistral
client = Mistral(api_key=sys.argv[2], server_url=sys.argv[1])
with client.chat.stream(model="mistral-small-latest", max_tokens=20,
                        messages=[{"role": "user", "content": sys.argv[3]}]) as events:
    text = "".join(event.data.choices[0].delta.content or "" for event in events)
print(json.dumps({"s": time.perf_counter() - start, "status": "ok" if text else "empty"}))
"""


def _cold(code: str, *args: str, cwd: str, cache: str) -> float:
    """One run in a fresh process with no key (and no .env: it runs in an empty folder).

    Each run has a folder of its own inside `cwd`, so no run finds the response cache an
    earlier run left (.mistral_magic/): every first cell really sends, as a new user's does.
    """

    env = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY", "MISTRAL_SERVER_KEY")}
    env["XDG_CACHE_HOME"] = cache  # the tokenizer's vocabulary cache (platformdirs)
    with tempfile.TemporaryDirectory(dir=cwd) as own:
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                             text=True, check=True, cwd=own, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["status"] != "ok":
        raise RuntimeError(f"a cold-start run ended {result['status']}: {out.stderr[-500:]}")
    return result["s"]


def compiled() -> None:
    """The package's modules compiled to bytecode, as a returning user's kernel finds them.

    pip compiled the SDK when it installed it; an editable install of this package is
    compiled by its first import, unless PYTHONDONTWRITEBYTECODE is set (CI sets it), and
    then every cold run would compile some sixty modules from source (about 70 ms) that
    no user's second kernel compiles.
    """
    import compileall
    import importlib.util
    from pathlib import Path

    package = Path(importlib.util.find_spec("mistral_magic").origin).parent
    compileall.compile_dir(str(package), quiet=1)


def _paired(repeats: int, magic, sdk) -> dict:
    """Magic and SDK runs side by side, the order alternating inside each pair."""
    runs = []
    for i in range(repeats):
        if i % 2 == 0:
            m, k = magic(), sdk()
        else:
            k, m = sdk(), magic()
        runs.append({"magic_s": m, "sdk_s": k, "ratio": m / k})
    ratios = [r["ratio"] for r in runs]
    return {"runs": runs, "median_pair": median_pair(ratios), "ratio": summary(ratios),
            "magic_s": summary([r["magic_s"] for r in runs])}


def bench_coldstart(quick: bool) -> dict:
    """A fresh kernel's %load_ext + first cell, against the SDK's cold import + first call."""

    repeats = 9 if quick else 15  # pairs: a cold process's time varies by tens of percent
    compiled()
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryDirectory() as cache, \
            ServerProcess(*NO_DELAYS) as server:
        url, key = server.url, server.api_key
        # The vocabulary cache a returning user has (a new user's is measured too).
        subprocess.run([sys.executable, "-c", "from mistral_magic.money import tokens; tokens.vocabulary()"],
                       check=True, env={**os.environ, "XDG_CACHE_HOME": cache})
        # And the server's model listing a returning user's first cell remembers (`listings`).
        _cold(COLD_CELL, url, key, "", COLD_PROMPT, cwd=cwd, cache=cache)

        def sdk() -> float:
            return _cold(COLD_SDK, url, key, COLD_PROMPT, cwd=cwd, cache=cache)

        def hosted(budget: str = "") -> Callable[[], float]:
            return lambda: _cold(COLD_CELL, url, key, budget, COLD_PROMPT, cwd=cwd, cache=cache)

        def offline(cache_dir: str | None = None) -> float:
            if cache_dir is not None:
                return _cold(COLD_CELL, "", "", "", COLD_PROMPT, cwd=cwd, cache=cache_dir)
            with tempfile.TemporaryDirectory() as empty:  # a new user: nothing cached yet
                return _cold(COLD_CELL, "", "", "", COLD_PROMPT, cwd=cwd, cache=empty)

        return {
            "prompt": COLD_PROMPT, "max_tokens": 20,
            "server": _paired(repeats, hosted(), sdk),
            "budget": _paired(repeats, hosted("5.0"), sdk),
            "offline": _paired(repeats, lambda: offline(cache), sdk),
            "offline_new_user": _paired(repeats, offline, sdk),
        }


def coldstart_rows(c: dict) -> list[Row]:
    def secs(v: float) -> str:
        return f"{v:.2f} s"

    def ratio_row(name: str, r: dict, target: str) -> Row:
        pair = r["runs"][r["median_pair"]]
        return Row(name, f"{pair['magic_s']:.2f} s vs {pair['sdk_s']:.2f} s (median pair)",
                   f"{pair['ratio']:.2f}x", spread_text(r["ratio"], lambda v: f"{v:.2f}x"),
                   f"{r['ratio']['max']:.2f}x", target)

    def seconds_row(name: str, r: dict, target: str) -> Row:
        s = r["magic_s"]
        sdk = statistics.median(run["sdk_s"] for run in r["runs"])
        return Row(name, f"SDK's cold call beside it: {sdk:.2f} s", secs(s["median"]),
                   spread_text(s, secs), secs(s["max"]), target)

    return [
        ratio_row("cold %load_ext + first cell vs SDK's cold import + first call", c["server"],
                  "<= 1.2x (median)"),
        ratio_row("  same, with a budget (holds the prompt before sending)", c["budget"],
                  "<= 1.3x (median)"),
        seconds_row("no key: first cell, offline server started by it", c["offline"], "<= 1.5 s"),
        seconds_row("  same, a new user (no tokenizer cache yet)", c["offline_new_user"], ""),
    ]


