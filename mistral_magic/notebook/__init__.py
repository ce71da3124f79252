"""The surface a user types: the magics, the ``%mistral`` commands and their manual.

`magics` (``MistralMagics``: settings and the ``%%mistral`` cell's arguments), `commands`
(one method per ``%mistral`` command), `manual` (the text of ``%%mistral?``), `research` (a
cell with built-in tools, ``--library`` or ``--agent``), `fim` (``%%mistral --fim``), `fix`
(``%mistral fix`` and ``Err``) and `importhook` (``df.mistral`` registered once pandas is
imported).

The top layer: it may use every other part of the package; nothing below imports it.
"""
