"""mistral-magic-lab: mistral_magic's JupyterLab extension, front end and server extension.

The front end (TypeScript in ``lab/src``, shipped built in ``labextension/``, so
installing needs no Node.js) adds, in JupyterLab:

- **Codestral completion as you type** (opt-in): the text around the cursor and the
  code of the cells above go to this server extension, which calls Codestral's
  fill-in-the-middle with the folder's key and shows the answer as ghost text;
- **the kernel's spend in the status bar**, sent by the kernel over a comm
  (``mistral_magic/labcomm.py``);
- **generated cells that replace themselves**: ``%%mistral --format code``, ``--fim``
  and ``%mistral fix`` update the cell they generated instead of adding another.

This package is the server side: ``POST /mistral-magic/completion`` (`handlers`), its
settings (`settings.MistralCompletion`, e.g. ``c.MistralCompletion.daily_cap_usd``),
where requests go (`backends`) and what they may spend (`daily`). It is enabled when
installed (``etc/jupyter/jupyter_server_config.d/mistral_magic_lab.json``) and loads in
every ``jupyter lab``, so it imports nothing heavy until the first completion.
"""

from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "mistral-magic-lab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mistral_magic_lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Add the routes; the settings are read from the server's config."""
    from .handlers import setup

    setup(serverapp)
