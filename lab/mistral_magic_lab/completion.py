"""`Completer`: one Codestral fill-in-the-middle for the text around the cursor.

A request carries the cell's text before and after the cursor, the code of the
cells above (nearest first) and the notebook's path. The prompt is the code above,
as much as ``MistralCompletion.context_tokens`` allows (counted with the tokenizer
the kernel uses), then the text before the cursor; the suffix is the text after it.
Each notebook has at most one completion under way: a newer request cancels the
older one, and so does a browser that goes away (the handler cancels the task), so
an abandoned completion stops at once and its answer is never shown.

The call goes through the official SDK to the folder's backend (`backends.resolve`),
held against the day's cap before it is sent and recorded in the folder's ledger
when it ends, also when it failed (nothing used, $0) or was cancelled after it was
sent (its prompt counted, as the kernel counts an interrupted call).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .backends import BackendError, Target, resolve
from .daily import DailyCap, Refused

#: Text kept on each side of the cursor: the end of what is before, the start of what is after.
MAX_SIDE_CHARS = 20_000
MAX_ABOVE_CELLS = 200
#: The FIM control tokens around prompt and suffix (as the kernel's `%%mistral --fim` counts).
CONTROL_TOKENS = 3


class BadRequest(ValueError):
    """A request that does not say what to complete; the message is the fix."""


@dataclass(frozen=True)
class Ask:
    """What the browser sends: the text around the cursor, the code above, the notebook."""

    prefix: str
    suffix: str
    path: str
    above: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, body) -> Ask:
        """An `Ask` from a JSON body, or `BadRequest` naming what is wrong."""
        if not isinstance(body, dict):
            raise BadRequest("send a JSON object: {prefix, suffix, path, above}")
        prefix, suffix, path = body.get("prefix"), body.get("suffix", ""), body.get("path")
        above = body.get("above", [])
        if not isinstance(prefix, str) or not isinstance(suffix, str):
            raise BadRequest("prefix and suffix are the cell's text before and after the cursor")
        if not isinstance(path, str) or not path:
            raise BadRequest("path is the notebook's path, relative to the server's root")
        if not isinstance(above, list) or not all(isinstance(c, str) for c in above):
            raise BadRequest("above is a list of the code of the cells above, nearest first")
        return cls(prefix[-MAX_SIDE_CHARS:], suffix[:MAX_SIDE_CHARS], path,
                   above[:MAX_ABOVE_CELLS])


class Completer:
    """Completions for one server: settings, root folder, cap, clients, one task per notebook."""

    def __init__(self, settings, root_dir: str | Path):
        self.settings = settings
        self.root = Path(root_dir).resolve()
        self.cap = DailyCap(lambda: settings.daily_cap_usd)
        self._running: dict[str, asyncio.Task] = {}
        self._clients: dict[Target, object] = {}
        self._prices = None

    def folder(self, path: str) -> Path:
        """The notebook's folder, which must be inside the server's root."""
        relative = PurePosixPath(path)
        folder = (self.root / relative).resolve().parent
        if relative.is_absolute() or not folder.is_relative_to(self.root):
            raise BadRequest(f"path {path!r} is not inside the server's root folder")
        return folder

    def start(self, ask: Ask) -> asyncio.Task:
        """Start a completion for `ask`, cancelling the one its notebook had under way."""
        folder = self.folder(ask.path)
        previous = self._running.get(ask.path)
        if previous is not None:
            previous.cancel()
        task = asyncio.ensure_future(self._complete(ask, folder))
        self._running[ask.path] = task
        task.add_done_callback(lambda done: self._running.pop(ask.path, None)
                               if self._running.get(ask.path) is done else None)
        return task

    async def _complete(self, ask: Ask, folder: Path) -> dict:
        settings = self.settings
        model = settings.model
        try:
            target = await asyncio.to_thread(resolve, settings, folder)
        except BackendError as exc:
            return self._reply("error", reason=str(exc))
        prompt, counted = await asyncio.to_thread(self._prompt, ask)
        prices = self.prices()
        # Tekken's tokens are at least a byte each: the prompt's bytes bound its tokens.
        bound = len(prompt.encode()) + len(ask.suffix.encode()) + CONTROL_TOKENS
        worst = prices.cost(model, bound, settings.max_tokens)
        if worst is None:
            return self._reply("refused", reason=f"{model} has no known price, so the daily cap "
                                                 "cannot count it; set MistralCompletion.model")
        await self.cap.load(folder)
        try:
            ticket = self.cap.hold(worst)
        except Refused as exc:
            return self._reply("refused", reason=str(exc))
        row = {"model": model, "backend": target.kind, "prompt_tokens": 0,
               "completion_tokens": 0, "cost": 0.0, "status": "error"}
        started = time.perf_counter()
        try:
            response = await self.client(target).fim.complete_async(
                model=model, prompt=prompt, suffix=ask.suffix, max_tokens=settings.max_tokens,
                temperature=0.0, timeout_ms=int(settings.timeout_s * 1000))
        except asyncio.CancelledError:
            # Sent and abandoned: the prompt may be billed, so it is counted and kept.
            row.update(status="interrupted", prompt_tokens=counted,
                       cost=prices.cost(model, counted, 0))
            self._settle(ticket, row, started)
            self.cap.record(folder, row)
            raise
        except Exception as exc:  # SDK, transport or server errors: one line, $0 (nothing used)
            row["error"] = reason = _one_line(exc)
            self._settle(ticket, row, started)
            await asyncio.to_thread(self.cap.record, folder, row)
            return self._reply("error", reason=reason)
        usage = response.usage
        row.update(status="ok", model=response.model or model,
                   prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
        row["cost"] = prices.cost(row["model"], row["prompt_tokens"], row["completion_tokens"])
        self._settle(ticket, row, started)
        await asyncio.to_thread(self.cap.record, folder, row)
        return self._reply("ok", completion=_content(response), model=row["model"],
                           backend=target.kind, cost=row["cost"])

    def _settle(self, ticket: int, row: dict, started: float) -> None:
        """Spend the completion's cost against the cap (on the loop's thread, as holds are)."""
        row["latency_s"] = time.perf_counter() - started
        self.cap.settle(ticket, row["cost"])

    def _reply(self, status: str, **fields) -> dict:
        return {"completion": "", "status": status, "spent_today": self.cap.spent_today,
                "cap_usd": self.cap.cap_usd, **fields}

    def _prompt(self, ask: Ask) -> tuple[str, int]:
        """The prompt (the code above, bounded, then the prefix) and its tokens with the suffix."""
        from mistral_magic.money.tokens import count_text

        chosen, used = [], 0
        for code in ask.above:
            if not code.strip():
                continue
            tokens = count_text(code) + 1
            if used + tokens > self.settings.context_tokens:
                break
            chosen.append(code)
            used += tokens
        prompt = "".join(code.rstrip("\n") + "\n\n" for code in reversed(chosen)) + ask.prefix
        counted = used + count_text(ask.prefix) + count_text(ask.suffix) + CONTROL_TOKENS
        return prompt, counted

    def prices(self):
        if self._prices is None:
            from mistral_magic.money.prices import load_prices

            self._prices = load_prices()
        return self._prices

    def client(self, target: Target):
        """The SDK client for a target (one per backend and key, kept)."""
        if target not in self._clients:
            from mistralai.client import Mistral

            key = target.key
            # A callable keeps the key out of reprs, and stops the SDK from reading
            # MISTRAL_API_KEY itself and sending it to a host it does not belong to.
            self._clients[target] = Mistral(api_key=lambda: key, server_url=target.url)
        return self._clients[target]

    async def close(self) -> None:
        """Cancel what runs and close the clients' connections."""
        for task in list(self._running.values()):
            task.cancel()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            if client.sdk_configuration.async_client is not None:
                await client.sdk_configuration.async_client.aclose()


def _content(response) -> str:
    """The completion's text (content may come as chunks)."""
    content = response.choices[0].message.content if response.choices else ""
    if isinstance(content, list):
        content = "".join(getattr(chunk, "text", "") or "" for chunk in content)
    return content or ""


def _one_line(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {text}"
