"""The surface a user types: the magics, the ``%mistral`` commands and their manual.

`magics` (``MistralMagics``: settings and the ``%%mistral`` cell's arguments), `commands`
(one registered function per ``%mistral`` command, grouped by what they act on), `manual`
(the text of ``%%mistral?``), `dryrun` (``--dry-run``), `research` (a cell with built-in
tools, ``--library`` or ``--agent``), `fim` (``%%mistral --fim``), `fix` (``%mistral fix``
and ``Err``), `importhook` (``df.mistral`` registered once pandas is imported) and `labcomm`
(the kernel's side of the JupyterLab extension: spend over a comm, generated cells marked).

The top layer: it may use every other part of the package; nothing below imports it.
"""
