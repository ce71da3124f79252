"""`%mistral transcribe|speak|voices`: recordings into text, text into speech, the voices.

    %mistral transcribe interview.mp3 --diarize -o calls     # streamed, then a frame of segments
    %mistral speak "Bonjour à tous !" --voice fr_marie_neutral
    %mistral voices

``%mistral transcribe`` streams the transcript into the cell, then shows a DataFrame of
segments (``start``, ``end``, ``speaker`` with ``--diarize``, ``text``; the whole text in
``frame.attrs["text"]``); ``-o VAR`` keeps the frame. ``%mistral speak`` shows an
``IPython.display.Audio`` player; ``-o VAR`` keeps the `calls.audio.Speech` (``.data`` is the
file). See `calls.audio` for prices, holds and what is refused, `inputs.audio` for what a
recording may be.
"""

from __future__ import annotations

from IPython.core.error import UsageError

from ...errors import Interrupted
from . import command

OUTPUT = (("-o", "--output"), {"default": None, "help": "keep the result in this variable"})


@command("transcribe",
         (("source",), {"help": "a path (WAV, MP3, FLAC, OGG, WEBM, M4A), an http(s) URL, or a "
                                "name holding bytes or an IPython Audio"}),
         (("--diarize",), {"action": "store_true", "help": "label who speaks (speaker column)"}),
         (("--timestamps",), {"default": "segment", "choices": ["segment", "word", "none"],
                              "help": "timestamps of the segments (default: segment)"}),
         (("--language",), {"default": None, "help": "the language, e.g. fr (default: detected)"}),
         (("--bias",), {"default": None, "help": "names and terms to spell right, by commas"}),
         (("-m", "--model"), {"default": None, "help": "model (default: voxtral-mini-latest)"}),
         (("--no-stream",), {"action": "store_true", "help": "wait for the whole transcript"}),
         OUTPUT)
def transcribe(ctx, args):
    from IPython.display import display

    from ...calls import audio
    from ...inputs.audio import recording
    from ...inputs.chunks import value_of
    from ...show import render
    from ...show.answer import INTERRUPTED_MARK, provenance
    from ...show.display import StreamView

    user_ns = ctx.magics.shell.user_ns
    value = value_of(args.source, user_ns)
    rec = recording(value, None if isinstance(value, str) else args.source)
    options = audio.Options(args.model or audio.DEFAULT_TRANSCRIBE, args.diarize, args.timestamps,
                            args.language, audio.bias_words(args.bias))
    options.check(ctx.session)
    view = StreamView(ctx.magics.shell)
    view.start(f"*…listening to {rec.describe()}…*")
    stream = ctx.magics.stream and not args.no_stream
    try:
        heard = audio.transcribe(ctx.session, rec, options, stream=stream,
                                 on_text=lambda parts: view.feed(parts))
    except Interrupted as stopped:
        partial = stopped.partial
        if partial is not None and partial.answer is not None:
            view.finish(partial.text + INTERRUPTED_MARK, partial.footer, provenance(partial.answer))
            if args.output:
                user_ns[args.output] = partial.frame()
        raise
    except BaseException:
        view.clear()
        raise
    view.finish(heard.text, heard.footer, provenance(heard.answer))
    frame = heard.frame()
    display(render.frame(frame), raw=True)
    if args.output:
        user_ns[args.output] = frame


@command("speak",
         (("text",), {"nargs": "+", "help": "the text to say (quote it), or a name holding it"}),
         (("--voice",), {"default": None, "help": "a voice's id or slug (%mistral voices)"}),
         (("-m", "--model"), {"default": None, "help": "model (default: voxtral-mini-tts-latest)"}),
         (("--format",), {"default": "mp3", "choices": ["mp3", "wav", "flac", "opus"],
                          "help": "the audio file's format (default: mp3)"}),
         OUTPUT)
def speak(ctx, args):
    from IPython.display import display

    from ...calls import audio

    text = " ".join(args.text)
    named = ctx.magics.shell.user_ns.get(text) if text.isidentifier() else None
    spoken = audio.speak(ctx.session, named if isinstance(named, str) else text,
                         voice=args.voice, model=args.model, fmt=args.format)
    display(spoken)
    if args.output:
        ctx.magics.shell.user_ns[args.output] = spoken


@command("voices", OUTPUT)
def voices(ctx, args):
    from ...calls import audio

    frame = audio.voices_frame(ctx.session)
    if args.output:
        ctx.magics.shell.user_ns[args.output] = frame
    return frame


def speak_answer(magics, answer, voice: str) -> None:
    """``%%mistral --speak``: the cell's answer read aloud under it (its own call and cost)."""
    from IPython.display import display

    from ...calls import audio

    if answer.status != "ok" or not answer.reply.strip():
        return
    words = audio.readable(answer.reply)
    if not words:
        raise UsageError("--speak: the answer has no words to say")
    display(audio.speak(magics.session, words, voice=None if voice == "default" else voice))
