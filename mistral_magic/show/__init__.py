"""What reaches the front end: the one safe render path, streamed views, answers, tables.

`render` (the only place outside text becomes sanitised HTML), `display` (``StreamView``:
a streamed answer at a bounded rate and a cost linear in its length; `blocks` says where
its finished blocks end), `answer` (``Answer``, its footer and provenance) and `tables`
(what ``%mistral history|usage|models|config`` return).

It may use `money`, `store` (masking keys), `chat`, `errors` and the offline model catalogue;
it never calls the API (no client, no backend): what it shows is handed to it.
"""
