"""`%mistral history|chats|reset|undo|chat`: the conversations and their edits."""

from __future__ import annotations

from . import CHAT, Note, command


def _say(sentence: str) -> None:
    """Show what an edit did, as a message rather than an `Out[n]` value."""
    from IPython.display import display

    display(Note(sentence))


@command("history", CHAT)
def history(ctx, args):
    from ...show import tables

    return tables.history_frame(ctx.session, args.chat)


@command("chats")
def chats(ctx, args):
    from ...show import tables

    return tables.chats_frame(ctx.session)


@command("reset", CHAT, (("--all",), {"action": "store_true"}))
def reset(ctx, args):
    if args.all:
        ctx.session.chats.clear()
        return _say("All chats cleared.")
    chat = ctx.session.chats.get(args.chat)
    count = len(chat)
    chat.reset()
    _say(f"Chat `{args.chat}` reset ({count} turn{'' if count == 1 else 's'} removed).")


@command("undo", CHAT)
def undo(ctx, args):
    chat = ctx.session.chats.get(args.chat)
    turn = chat.undo()
    if turn is None:
        return _say(f"Chat `{args.chat}` has no turns to undo.")
    preview = " ".join(turn.prompt.split())[:60]
    _say(f"Removed the last turn of chat `{args.chat}`: “{preview}”.")


@command("chat", (("name",), {"nargs": "?", "help": "chat name"}))
def chat(ctx, args):
    from ... import widgets

    widgets.show_chat(ctx.session, args.name or ctx.magics.chat)
