"""What every benchmark shares: the table's rows, the spread of runs, pairing, the table."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass

import httpx

STREAM_TOKENS = 4000
# Streams are CPU-bound on loopback: no first-token or per-token delay, so the
# figures are the client's own cost and not the server's pacing.
NO_DELAYS = ("--ttft-ms", "0", "--token-delay-ms", "0")
# A pace for replaying a stream as a slower hosted model would send it (an assumption,
# not a measurement: loopback streams run far faster than any hosted model).
HOSTED_TOKENS_PER_S = 50


@dataclass
class Row:
    """One line of the table; empty cells stay empty."""

    benchmark: str
    measured: str = ""
    median: str = ""
    spread: str = ""
    worst: str = ""
    target: str = ""


HEADER = Row("benchmark", "measured", "median", "spread (min-max; IQR)", "worst", "target")


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(values: Sequence[float]) -> dict:
    """Median, min, max and quartiles of some runs."""
    values = list(values)
    out = {"median": statistics.median(values), "min": min(values), "max": max(values),
           "runs": len(values)}
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        out.update(q1=q1, q3=q3)
    return out


def spread_text(s: dict, fmt: Callable[[float], str]) -> str:
    text = f"{fmt(s['min'])}-{fmt(s['max'])}"
    if "q1" in s:
        text += f"; {fmt(s['q1'])}-{fmt(s['q3'])}"
    return f"{text} ({s['runs']} runs)"


def median_pair(ratios: Sequence[float]) -> int:
    """Index of the run whose ratio is the median (the lower middle one for an even count)."""
    order = sorted(range(len(ratios)), key=ratios.__getitem__)
    return order[(len(ratios) - 1) // 2]


def ratio_x(value: float) -> str:
    return f"{value:.3f}x"


def table(rows: Sequence[Row]) -> str:
    cells = [astuple(HEADER), *(astuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    cells.insert(1, tuple("-" * w for w in widths))
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


class ServerProcess:
    """The offline server in its own process, so client and server do not share a GIL."""

    def __init__(self, *flags: str):
        import secrets

        self.api_key = secrets.token_urlsafe(16)
        # The server binds a free port itself (--port 0) and prints its URL first, so no
        # other process on this shared machine can take the port in between.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        if not self._start(flags):
            self._stderr.seek(0)
            raise RuntimeError(f"the offline server did not start: {self._stderr.read()[-2000:]}")

    def _start(self, flags) -> bool:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mistral_magic.offline", "--port", "0",
             f"--api-key={self.api_key}", *flags],  # a key may begin with "-"
            stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )
        first = self.proc.stdout.readline()  # "Offline Mistral API on URL", once it listens
        if not first.startswith("Offline Mistral API on "):
            self.proc.wait(10)
            return False
        self.url = first.split(" on ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        # The first chat request waits for the tokenizer; pay that outside the timings.
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(f"{self.url}/v1/chat/completions", timeout=120,
                           headers={"Authorization": f"Bearer {self.api_key}"},
                           json={"model": "mistral-small-latest", "max_tokens": 1,
                                 "messages": [{"role": "user", "content": "warm up"}]})
                return True
            except httpx.ConnectError:
                if self.proc.poll() is not None:
                    return False
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()
        self._stderr.close()


def use_server(shell, server) -> None:
    # A self-hosted server_url takes its own key: the La Plateforme key never goes there.
    shell.run_line_magic("config", f"MistralMagics.server_url = {server.url!r}")
    shell.run_line_magic("config", f"MistralMagics.server_key = {server.api_key!r}")
