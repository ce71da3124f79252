"""What reaches the front end: the one safe render path, streamed views, answers, tables.

`render` (the only place outside text becomes sanitised HTML), `display` (``StreamView``: a
streamed answer in one output at a bounded rate), `answer` (``Answer``, its footer and
provenance), `sources` (what built-in tools add: cited sources, tool runs, pictures) and
`tables` (what ``%mistral history|usage|models|config`` return).

It may use `money`, `store` (masking keys), `chat`, `errors` and the offline model
catalogue; it never calls the API (no client, no backend): what it shows is handed to it.
"""
