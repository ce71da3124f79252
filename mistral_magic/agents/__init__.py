"""Mistral's Conversations and Agents APIs, document libraries and built-in tools, from a cell.

`builtins` (the built-in tools: their names, which models have them), `threads` (a named
chat mapped onto server-side conversations: start, append or restart), `call`
(``ConversationCall``: one conversation call through the call path, its events read into an
answer with sources, tool runs and pictures), `loop` (a cell's steps, built-in tools beside
notebook functions), `registry` (agents by name, version and alias), `libraries` (document
libraries by name: create, add, list) and `result` (what ``-o VAR`` gets).

It may use the tool loop (`tools`), the call path (`calls`), `inputs`, `show`, `money`,
`store`, `chat` and `errors`; the session, the row engine and the notebook surface use it.
"""
