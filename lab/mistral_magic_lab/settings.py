"""`MistralCompletion`: the server extension's settings, as ``MistralMagics`` has the kernel's.

Set them in ``jupyter_server_config.py`` (``c.MistralCompletion.daily_cap_usd = 1.0``)
or on the command line (``jupyter lab --MistralCompletion.daily_cap_usd=1.0``).
"""

from __future__ import annotations

from traitlets import Enum, Float, Integer, Unicode
from traitlets.config import Configurable


class MistralCompletion(Configurable):
    """Codestral completion as you type in JupyterLab: model, cap, context, backend."""

    model = Unicode("codestral-latest", help="The FIM model completions ask.").tag(config=True)
    max_tokens = Integer(64, min=1, max=1024, help="Tokens a completion may have at most."
                         ).tag(config=True)
    context_tokens = Integer(
        1500, min=0,
        help="Tokens of code from the cells above sent with a completion (nearest cells first).",
    ).tag(config=True)
    daily_cap_usd = Float(
        0.50, min=0.0,
        help="USD completions may cost in a day (local time), counted from the ledgers of "
             "the folders they were asked in; past it they are refused. Separate from the "
             "kernel's MistralMagics.budget_usd, which lives in the kernel's memory.",
    ).tag(config=True)
    backend = Enum(("auto", "mistral", "offline"), "auto",
                   help="auto: a key (MISTRAL_API_KEY, or a .env file beside the notebook) "
                        "means La Plateforme, no key the offline server.").tag(config=True)
    server = Enum(("global", "eu", "us"), "global", help="La Plateforme's region."
                  ).tag(config=True)
    server_url = Unicode(
        None, allow_none=True,
        help="A self-hosted server (e.g. vLLM) that serves FIM; it gets MISTRAL_SERVER_KEY "
             "(never the La Plateforme key).",
    ).tag(config=True)
    timeout_s = Float(10.0, min=0.1, help="Seconds a completion may take.").tag(config=True)
