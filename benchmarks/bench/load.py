"""Loading the extension is cheap: `%load_ext` against importing the SDK."""

from __future__ import annotations

import subprocess
import sys

from .harness import Row, median_pair, spread_text, summary

LOAD_EXT = """
import time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
shell.run_line_magic("load_ext", "mistral_magic")
print(time.perf_counter() - start)
"""
IMPORT_SDK = """
import time
start = time.perf_counter()
import mistralai.client
print(time.perf_counter() - start)
"""






def _in_fresh_python(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_load(quick: bool) -> dict:
    repeats = 3 if quick else 7
    runs = []
    for i in range(repeats):  # paired, the order alternating, so machine drift hits both alike
        if i % 2 == 0:
            load, sdk = _in_fresh_python(LOAD_EXT), _in_fresh_python(IMPORT_SDK)
        else:
            sdk, load = _in_fresh_python(IMPORT_SDK), _in_fresh_python(LOAD_EXT)
        runs.append({"load_ext_s": load, "import_sdk_s": sdk, "ratio": load / sdk})
    ratios = [r["ratio"] for r in runs]
    return {"runs": runs, "median_pair": median_pair(ratios), "ratio": summary(ratios)}


def load_rows(ld: dict) -> list[Row]:
    pair = ld["runs"][ld["median_pair"]]
    return [Row("%load_ext vs import mistralai.client",
                f"{pair['load_ext_s'] * 1000:.0f} ms vs {pair['import_sdk_s'] * 1000:.0f} ms",
                f"{pair['ratio']:.2f}x", spread_text(ld["ratio"], lambda v: f"{v:.2f}x"),
                f"{ld['ratio']['max']:.2f}x", "< 0.33x")]


