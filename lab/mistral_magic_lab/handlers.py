"""The server extension's routes: ``POST /mistral-magic/completion`` and ``GET .../status``.

Both need the server's token (or its login cookie with the XSRF header, which
JupyterLab's requests carry): ``@tornado.web.authenticated`` on every verb, so a
request without them gets 403. A completion's answer is JSON::

    {"completion": "...", "status": "ok" | "refused" | "error" | "superseded",
     "reason": "...", "model": ..., "backend": ..., "cost": ...,
     "spent_today": ..., "cap_usd": ...}

A refusal (the day's cap) or a failure (no key, a server error) is a 200 with an empty
completion and the reason, which the status bar shows; the editor stays quiet. A
browser that goes away (the front end aborts a stale request) cancels the completion.
"""

from __future__ import annotations

import asyncio
import json

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .completion import Ask, BadRequest, Completer
from .settings import MistralCompletion

NAMESPACE = "mistral-magic"


class CompletionHandler(APIHandler):
    """One Codestral completion for the text around the cursor."""

    _task: asyncio.Task | None = None

    @property
    def completer(self) -> Completer:
        return self.settings["mistral_magic_lab.completer"]

    @tornado.web.authenticated
    async def post(self) -> None:
        try:
            ask = Ask.parse(self.get_json_body())
            self._task = self.completer.start(ask)
        except BadRequest as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        # Waiting (not awaiting) keeps the task's cancellation out of this coroutine;
        # this coroutine's own cancellation (the server stopping) still propagates, and
        # takes the completion with it.
        try:
            await asyncio.wait([self._task])
        finally:
            self._task.cancel()  # a no-op once it is done
        if self._task.cancelled():
            if self.request.connection.stream.closed():
                return  # the browser went away: nobody to answer
            reply = {"completion": "", "status": "superseded"}
        else:
            reply = self._task.result()
        self.finish(json.dumps(reply))

    def on_connection_close(self) -> None:
        """A browser that went away (a stale request aborted) stops its completion."""
        if self._task is not None:
            self._task.cancel()
        super().on_connection_close()


class StatusHandler(APIHandler):
    """Today's completion spend and the cap (for the status bar before the first completion)."""

    @tornado.web.authenticated
    def get(self) -> None:
        completer: Completer = self.settings["mistral_magic_lab.completer"]
        self.finish(json.dumps({
            "model": completer.settings.model,
            "spent_today": completer.cap.spent_today,
            "cap_usd": completer.cap.cap_usd,
        }))


def setup(serverapp) -> None:
    """Add the routes under the server's base URL, with one `Completer` for the server."""
    web_app = serverapp.web_app
    settings = MistralCompletion(parent=serverapp)
    web_app.settings["mistral_magic_lab.completer"] = Completer(settings, serverapp.root_dir)
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(".*$", [
        (url_path_join(base, "completion"), CompletionHandler),
        (url_path_join(base, "status"), StatusHandler),
    ])
    serverapp.log.info("mistral_magic_lab: Codestral completion at %s/completion", base)
