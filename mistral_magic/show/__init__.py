"""What reaches the front end: the one safe render path, streamed views, answers, tables.

`render` (the only place outside text becomes sanitised HTML; `markdown` is how it reads
Markdown and where math is), `display` (``StreamView``: a streamed answer at a bounded
rate and a cost linear in its length; `blocks` says where its finished blocks end),
`terminal` (the same in terminal IPython: Markdown and tables rendered by rich at the
terminal's width, terminal controls removed from outside text), `answer` (``Answer``, its
footer and provenance), `sources` (what built-in tools add: cited sources, tool runs,
pictures), `tables` (what ``%mistral history|usage|models|config`` return) and
`transcript` (a chat as Markdown or a notebook, for ``%mistral export``).

It may use `money`, `store` (masking keys), `chat`, `errors`, the offline model catalogue and
the offline answers' label line; it never calls the API (no client, no backend): what it
shows is handed to it.
"""
