"""The manual of `%%mistral` and `%mistral`: the text of %%mistral? and %mistral?.

Plain text (it is read in a terminal and in Jupyter's help pager, neither of which renders
reStructuredText): `text` puts the usage of %%mistral and %mistral first, then
`MANUAL`, then every option of a cell.
"""

from __future__ import annotations

import argparse
import copy

USAGE = "%mistral COMMAND [ARGS]      (the commands are listed below)"

MANUAL = """Ask a Mistral model from a cell (%%mistral): the answer streams in. Or run a command (%mistral).

Load with %load_ext mistral_magic. With no API key the built-in offline server
answers (local, deterministic, free); with MISTRAL_API_KEY (or %mistral key,
or a .env file) cells go to La Plateforme.

Ask, and follow up — each cell is a turn of its chat, re-running a cell replaces
its turn:

    %%mistral
    Explain the bias-variance trade-off in three bullet points.

    %%mistral -t 0.2 --max-tokens 200
    Now give a one-line example with a decision tree.

Variables come from the notebook ({{ / }} for literal braces); math such as
$\\frac{1}{n}$ or \\(x_{i}\\) is sent as written, and --dry-run lists the
names filled in. A DataFrame goes as a table on its own lines, or past 20 rows as a
summary ({df:rows}, {df:rows=50} and {df:summary} choose):

    %%mistral -c review -s "You are a terse data reviewer." -o verdict
    Is anything odd in this table? {df}

Code straight into the next cell, a dry run, JSON and schema-typed DataFrames:

    %%mistral --format code
    Write a pandas function that winsorises every numeric column at 1%/99%.

    %%mistral --dry-run
    How much would this prompt cost?

    %%mistral --schema "name, age int, city" --many -o people
    Extract the people: {text}

Pictures (a Figure kept as fig, ax = plt.subplots(), an image, array, bytes, path
or URL) and documents (uploaded once, sent by signed URL); %mistral ocr reads one:

    %%mistral --image fig --file report.pdf
    Does the plot agree with the report?

Recordings, for a model that listens (voxtral-small-latest; priced per minute, the
length measured here), and the answer read aloud:

    %%mistral --audio call.wav -m voxtral-small-latest --speak
    What does the customer want?

Answers are kept in .mistral_magic/store.sqlite (MistralMagics.cache_path):
after a restart, a cell whose exact request was answered before gets that answer at
$0, marked cached; running a cell again in the same kernel, or --refresh, asks
again. %config MistralMagics.cache = "replay" never sends (no key needed): ship
%mistral cache export answers.sqlite with a notebook, and point cache_path at it.
Tool calls replayed from answers stored elsewhere (imported, shipped) ask before they run.
A chat's cells send its prompt_cache_key (from the notebook and the chat, never the
key), so the history they resend costs 10 % where the server cached it; the footer and
%mistral usage show the cached tokens (MistralMagics.prompt_cache = False: off).

Notebook functions as tools (each call shown under the answer), and reasoning:

    %%mistral --tools describe_column,plot_hist [--approve] [--max-steps 5]
    Describe the price column, then plot its histogram with 20 bins.

    %%mistral --think high
    Which region should we look at first, and why?

Mistral's built-in tools (through the Conversations API): sources as numbered footnotes, each
search or code run a collapsed block, pictures shown; a document library or an agent:

    %%mistral --tools web_search,describe_column -o found
    What changed in gradient boosting libraries, and how does our price column look?

    %%mistral --library course
    How does the course say to avoid overfitting?

    %%mistral --agent tutor@stable
    Explain PCA to a first-year student.

Mistral publishes no price for its built-in tools: their cost shows as unknown, and under a
budget a cell that uses them needs --allow-unpriced (or a price in MistralMagics.prices).

Codestral fills the one <FILL> in a cell of code; the completed code becomes the
next cell ({braces} are sent as written):

    %%mistral --fim
    def mean(values):
        <FILL>

Commands:

    %mistral history [-c CHAT]   %mistral reset [-c CHAT | --all]   %mistral undo [-c CHAT]
    %mistral chats               %mistral usage [--all]             %mistral models [--mine]
    %mistral models archive ID | unarchive ID | rename ID NEW NAME     (fine-tuned models)
    %mistral config              %mistral key [--clear]             %mistral backend
    %mistral tokens TEXT         %mistral schema SPEC [--many]
    %mistral batch list | status ID | cancel ID
    %mistral cache [clear | export FILE [--all] | import FILE]
    %mistral meter               %mistral panel                     %mistral chat NAME
    %mistral fix [-m MODEL]      %mistral moderate TEXT             %mistral sent [--columns]
    %mistral ocr PATH_OR_URL [--pages 0-2] [--schema SPEC | --tables | --blocks] [-o VAR] [-m MODEL]
                 [--confidence word|block|page] [--tables html|markdown] [--no-header] [--no-footer]
    %mistral transcribe FILE [--diarize] [--timestamps segment|word|none] [--language fr]
                             [--bias WORDS] [-m MODEL] [-o VAR]
    %mistral speak TEXT [--voice V] [--format mp3|wav|flac|opus] [-o VAR]
    %mistral voices
    %mistral library create NAME | add NAME FILES... | NAME [--wait]
    %mistral agent create NAME -m MODEL [-s TEXT] [--tools T] | update NAME | alias NAME A N
    %mistral agents
    %mistral export [-c CHAT] FILE.md | FILE.ipynb

%mistral fix explains the last error and puts the corrected cell next; Err holds
the last tracebacks as text ({Err[-1]} in a prompt).

Commands expand $name and {name} like any line magic:
%mistral batch status {job_id}. In a cell, {name} is the prompt's own
interpolation (names and attributes starting with _ are refused).

Settings (%config MistralMagics lists them):

    %config MistralMagics.model = "mistral-large-latest"
    %config MistralMagics.budget_usd = 0.50
    %config MistralMagics.server_url = "http://localhost:8000"   # its key: MISTRAL_SERVER_KEY

The La Plateforme key goes only to Mistral's own hosts over https; a self-hosted
server_url gets MistralMagics.server_key or MISTRAL_SERVER_KEY, or none.
"""


def text(parser: argparse.ArgumentParser) -> str:
    """The whole manual: both usages, `MANUAL`, then the cell's options (from its `parser`)."""
    plain = copy.copy(parser)  # the magic's own parser keeps its prog for its error messages
    plain.prog, plain.description = "%%mistral", None
    plain.formatter_class = argparse.HelpFormatter
    usage, _, options = plain.format_help().partition("\n\n")
    prefix = len("usage: ")  # argparse's, with the lines under it indented past it
    usage = "\n".join(line[prefix:] for line in usage.splitlines())
    return (f"{usage.strip()}\n{USAGE}\n\n{MANUAL.strip()}\n\n"
            f"Options of a %%mistral cell:\n{options.partition(chr(10))[2]}")
