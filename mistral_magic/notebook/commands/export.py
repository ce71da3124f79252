"""`%mistral export [-c CHAT] FILE.md|FILE.ipynb`: a chat as a document to hand out.

Markdown (prompts, answers, reasoning, tool calls, sources, footers) or a new notebook of
``%%mistral`` cells with their outputs (`show.transcript`), so a teacher can hand out a worked
dialogue. No key, signed URL or local path goes into it. An existing file is kept unless
``--force`` (the notebook in use may sit in the same folder).
"""

from __future__ import annotations

from pathlib import Path

from IPython.core.error import UsageError

from . import CHAT, Note, command

KINDS = (".md", ".ipynb")


@command("export", CHAT, (("file",), {"help": "FILE.md or FILE.ipynb"}),
         (("--force",), {"action": "store_true", "help": "replace the file if it exists"}))
def export(ctx, args):
    from ...show import transcript

    path = Path(args.file)
    if path.suffix.lower() not in KINDS:
        raise UsageError(f"%mistral export writes Markdown or a notebook: name a FILE.md or "
                         f"FILE.ipynb, e.g. %mistral export -c {args.chat} dialogue.md")
    chat = ctx.session.chats.find(args.chat)
    if chat is None or not chat.turns:
        raise UsageError(f"chat {args.chat!r} has no turns to export; %mistral chats lists the "
                         "chats (-c NAME picks one)")
    if path.exists() and not args.force:
        raise UsageError(f"{args.file} exists; choose another name, or add --force to replace it")
    session = ctx.session
    scrub = transcript.scrubber(lambda: (session.key, session.server_key))
    if path.suffix.lower() == ".md":
        path.write_text(transcript.markdown(chat, scrub), encoding="utf-8")
    else:
        import nbformat

        nbformat.write(transcript.notebook(chat, scrub), str(path))
    turns = len(chat.turns)
    return Note(f"Exported chat `{chat.name}` ({turns} turn{'' if turns == 1 else 's'}) "
                f"to `{args.file}`.")
