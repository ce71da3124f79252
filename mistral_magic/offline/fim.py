"""Fill-in-the-middle: a plausible code completion between a prompt and a suffix."""

from __future__ import annotations

import re

_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(([^)]*)\)[^:]*:\s*$")


def _args(signature: str) -> list[str]:
    names = []
    for part in signature.split(","):
        name = part.split(":")[0].split("=")[0].strip().lstrip("*")
        if name and name not in ("self", "cls") and name.isidentifier():
            names.append(name)
    return names


def complete(model: str, prompt: str, suffix: str) -> str:
    """Code that continues `prompt` and leads into `suffix`, labelled as offline."""
    lines = prompt.split("\n")
    last = lines[-1]
    header = next((_DEF.match(line) for line in reversed(lines[-3:]) if _DEF.match(line)), None)
    if header:
        indent = header.group(1) + "    "
        args = _args(header.group(3))
        lead = "" if last.strip() == "" and last == indent else ("\n" if last.strip() else "") + indent
        if last.strip() == "" and last != indent:
            lead = indent[len(last):] if indent.startswith(last) else "\n" + indent
        body = [f'"""{header.group(2).replace("_", " ").capitalize()} (offline completion by {model})."""']
        body.append(f"result = {' + '.join(args) if args else 'None'}")
        if "return" not in suffix:
            body.append("return result")
        text = lead + ("\n" + indent).join(body)
        if suffix and not suffix[0].isspace():
            # A suffix that returns belongs to the body; anything else follows the function.
            text += "\n" + indent if suffix.lstrip().startswith("return") else "\n\n\n"
        return text
    indent = re.match(r"\s*", last).group(0) if last.strip() == "" else ""
    lead = "" if not last.strip() else "\n"
    text = f"{lead}{indent}# offline completion by {model}: generated locally\n{indent}pass"
    return text + ("\n" if suffix and not suffix.startswith("\n") else "")
