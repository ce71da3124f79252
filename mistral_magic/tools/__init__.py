"""Notebook functions as tools, the tool loop, and reasoning controls.

`functions` (schemas from signatures and docstrings, the registry, one call run), `loop`
(a ``--tools`` cell step by step until the model answers) and `reasoning` (``--think``:
``reasoning_effort`` / ``prompt_mode`` as the model allows).

It may use the call path (`calls`), `inputs`, `show`, `money`, `chat`, `errors` and the
offline model catalogue; the session and the notebook surface use it.
"""
