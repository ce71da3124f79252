"""`%mistral batch|fix|moderate|ocr`: commands that do work (Batch API jobs, a fix, moderation, OCR)."""

from __future__ import annotations

from IPython.core.error import UsageError

from ...errors import guard
from . import Note, command


@command("batch", (("action",), {"choices": ["list", "status", "cancel"]}), (("job_id",), {"nargs": "?"}))
def batch(ctx, args):
    from ...rows import batch

    if args.action == "list":
        from ...rows.batch import Jobs

        return batch.jobs_frame(ctx.session.backend.client, Jobs(ctx.session).ids())
    if not args.job_id:
        raise UsageError(f"%mistral batch {args.action} needs a job id, e.g. %mistral batch {args.action} JOB_ID")
    job_id = args.job_id
    hints = {
        404: f"no batch job {job_id} on this backend; list jobs with %mistral batch list",
        422: f"{job_id!r} is not a batch job id (a UUID); list jobs with %mistral batch list",
    }
    if args.action == "status":
        return guard(ctx.magics.debug, lambda: batch.status(ctx.session.backend.client, job_id), hints)
    status = guard(ctx.magics.debug, lambda: batch.cancel(ctx.session.backend.client, job_id), hints)
    return Note(f"Batch job {job_id}: {status}.")


@command("fix", (("-m", "--model"), {"default": None,
                                                   "help": "model (default: MistralMagics.model)"}))
def fix(ctx, args):
    from .. import fix

    said = fix.run(ctx.magics, args.model)
    return None if said is None else Note(said)


@command("moderate", raw=True)
def moderate(ctx, text: str):
    from ...rows.engine import RowEngine
    from ...rows.labels import moderation_table

    if not text.strip():
        raise UsageError("%mistral moderate needs text, e.g. %mistral moderate You are an idiot")
    return moderation_table(RowEngine(ctx.session, progress=False), text)


@command(
    "ocr",
    (("source",), {"help": "a path, an http(s) URL, or a name holding bytes or a path"}),
    (("--pages",), {"default": None, "help": "pages from 0, e.g. 0-2 or 0,3,5-7 (under a "
                                             "budget, needed for a DOCX, text file or URL)"}),
    (("--schema",), {"default": None, "help": "fields to read into a typed one-row DataFrame"}),
    (("--tables",), {"nargs": "?", "const": "frames", "default": None, "metavar": "html|markdown",
                     "help": "alone: the pages' tables as DataFrames; html or markdown: tables in "
                             "that format, in place in the page (HTML sanitised)"}),
    (("--blocks",), {"action": "store_true",
                     "help": "the layout blocks as a DataFrame: page, type, x0, y0, x1, y1, content"}),
    (("--confidence",), {"choices": ["word", "block", "page"], "default": None,
                         "help": "confidence scores at that granularity; low-confidence words "
                                 "are marked in the page"}),
    (("--no-header",), {"action": "store_true", "help": "leave running headers out of the text"}),
    (("--no-footer",), {"action": "store_true", "help": "leave running footers out of the text"}),
    (("-o", "--output"), {"default": None, "help": "keep the result in this variable"}),
    (("-m", "--model"), {"default": None, "help": "OCR model (default: mistral-ocr-latest)"}),
)
def ocr(ctx, args):
    from IPython.display import display

    from ...inputs.chunks import value_of
    from ...rows import ocr
    from ...rows.ocr_pages import PageOptions
    from ...show import render

    if args.tables not in (None, "frames", "html", "markdown"):
        raise UsageError(f"--tables takes html or markdown (got {args.tables!r}), or nothing for "
                         "the tables as DataFrames")
    frames = args.tables == "frames"
    chosen = [name for name, on in (("--schema", args.schema), ("--tables", frames),
                                    ("--blocks", args.blocks)) if on]
    if len(chosen) > 1:
        raise UsageError(f"%mistral ocr takes one of --schema, --tables (as DataFrames) and "
                         f"--blocks, not {' and '.join(chosen)}")
    options = PageOptions(blocks=args.blocks, confidence=args.confidence,
                          tables=None if frames else args.tables, header=not args.no_header,
                          footer=not args.no_footer)
    user_ns = ctx.magics.shell.user_ns
    result = ocr.read(ctx.session, value_of(args.source, user_ns), args.source,
                      pages=args.pages, schema=args.schema, model=args.model, options=options)
    value: object = result
    if args.schema:
        value = ocr.annotation_frame(result, args.schema, ctx.session)
        display(render.frame(value, result.footer), raw=True)
    elif frames:
        value = result.tables()
        for table in value:
            display(render.frame(table), raw=True)
        display(render.note(f"{len(value)} table{'' if len(value) == 1 else 's'} in "
                            f"{result.name} · {result.footer}"), raw=True)
    elif args.blocks:
        value = result.blocks()
        display(render.frame(value, f"{len(value)} block{'' if len(value) == 1 else 's'} in "
                                    f"{result.name} · {result.footer}"), raw=True)
    else:
        display(result)
    if args.output:
        user_ns[args.output] = value
