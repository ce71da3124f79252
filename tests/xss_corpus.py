"""Text that would run script if it reached the page as HTML, and a checker of output HTML.

Each payload sets its own flag (`window.__xss<N>`), so a browser test can tell which
one ran. Each is at most ten words on one line: the offline model quotes the first
ten words of a prompt, so a cell's answer carries the whole payload back.
"""

from __future__ import annotations

import base64
import html
import re
from html.parser import HTMLParser

from mistral_magic.show.render import REASONING_STYLE

_DATA_HTML = base64.b64encode(b"<script>parent.__xss9=1</script>").decode()
_DATA_SVG = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg' onload='parent.__xss10=1'/>").decode()

PAYLOADS: list[tuple[str, str]] = [
    ("__xss1", '<img src=x onerror="window.__xss1=1">'),
    ("__xss2", "<script>window.__xss2=1</script>"),
    ("__xss3", "<svg onload=window.__xss3=1></svg>"),
    ("__xss4", '<iframe srcdoc="<img src=x onerror=parent.__xss4=1>"></iframe>'),
    ("__xss5", '<a href="javascript:window.__xss5=1">click</a>'),
    ("__xss6", "[click](javascript:window.__xss6=1)"),
    ("__xss7", "![pic](javascript:window.__xss7=1)"),
    ("__xss8", "<javascript:window.__xss8=1>"),
    ("__xss9", f"[data](data:text/html;base64,{_DATA_HTML})"),
    ("__xss10", f"![data](data:image/svg+xml;base64,{_DATA_SVG})"),
    ("__xss11", '<div style="background:url(javascript:window.__xss11=1)">bg</div>'),
    ("__xss12", '<p style="width:expression(window.__xss12=1)">css</p>'),
    ("__xss13", "[entity](&#106;avascript:window.__xss13=1)"),
    ("__xss14", "[tab](java&#x09;script:window.__xss14=1)"),
    ("__xss15", "<IMG SRC=x OnErRoR=window.__xss15=1>"),
    ("__xss16", "<b><i><img src=x onerror=window.__xss16=1></i></b>"),
    ("__xss17", '<object data="javascript:window.__xss17=1"></object>'),
    ("__xss18", '<embed src="javascript:window.__xss18=1">'),
    ("__xss19", '<form action="javascript:window.__xss19=1"><button>go</button></form>'),
    ("__xss20", "<details open ontoggle=window.__xss20=1>"),
    ("__xss21", "<math><mtext><img src=x onerror=window.__xss21=1></mtext></math>"),
    ("__xss22", "<style>@import 'javascript:window.__xss22=1';</style>"),
    ("__xss23", "$\\href{javascript:window.__xss23=1}{math}$"),
    ("__xss24", "[case](JaVaScRiPt:window.__xss24=1)"),
    ("__xss25", '<a href="&#x6A;avascript:window.__xss25=1">hex</a>'),
    ("__xss26", "`<img src=x onerror=window.__xss26=1>`"),
    ("__xss27", "<input autofocus onfocus=window.__xss27=1>"),
    ("__xss28", "<video><source onerror=window.__xss28=1></video>"),
    ("__xss29", "<svg><a xlink:href=javascript:window.__xss29=1><text>x</text></a></svg>"),
    ("__xss30", '<meta http-equiv=refresh content="0;url=javascript:window.__xss30=1">'),
    ("__xss31", "[ref][r] [r]: javascript:window.__xss31=1"),
    ("__xss32", "<a href=\"java\tscript:window.__xss32=1\">raw tab</a>"),
    ("__xss33", "<<img src=x onerror=window.__xss33=1>img>"),
    ("__xss34", '<img src="x` `<script>window.__xss34=1</script>"` `>'),
]
FLAGS = [flag for flag, _ in PAYLOADS]
CORPUS = "\n\n".join(text for _, text in PAYLOADS)

FORBIDDEN_TAGS = frozenset({
    "script", "iframe", "frame", "frameset", "svg", "math", "object", "embed", "form", "img",
    "style", "link", "meta", "base", "input", "button", "textarea", "select", "video", "audio",
    "source", "template", "body", "html", "marquee", "applet",
})
# A collapsed block is ours only (reasoning, tool calls): a `details` of any other class
# (say, one a model wrote) is a problem like a forbidden tag.
OUR_BLOCKS = frozenset({"mistral-reasoning", "mistral-tool", "mistral-tool error"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "data", "xlink:href",
                            "poster", "background", "srcset", "cite"})
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"^([^/?#]*):")


def unsafe_url(value: str) -> bool:
    """Whether a URL attribute's value has a scheme other than http, https or mailto.

    As a browser reads it: entities decoded, ASCII whitespace and controls dropped.
    """
    url = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(value)).lower()
    found = _SCHEME.match(url)
    return bool(found) and found[1] not in SAFE_SCHEMES


class _Inspector(HTMLParser):
    def __init__(self, allow_style: bool, allow_tags: frozenset[str]):
        super().__init__(convert_charrefs=True)
        self.allow_style = allow_style
        self.allow_tags = allow_tags
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in FORBIDDEN_TAGS and tag not in self.allow_tags:
            self.problems.append(f"<{tag}>")
        if tag == "details" and dict(attrs).get("class") not in OUR_BLOCKS:
            self.problems.append("<details> not made by render")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}>")
            elif name == "style" and tag == "details" and value == REASONING_STYLE:
                continue  # render's own fixed style of a reasoning block, never a model's
            elif name in ("style", "srcdoc") and not (name == "style" and self.allow_style):
                self.problems.append(f"<{tag} {name}={value!r}>")
            elif name in URL_ATTRIBUTES and unsafe_url(value):
                self.problems.append(f"<{tag} {name}={value!r}>")

    handle_startendtag = handle_starttag


def problems(markup: str, allow_style: bool = False, allow_tags=frozenset()) -> list[str]:
    """Every element or attribute in `markup` that could run script or load from elsewhere.

    `allow_style` accepts `style` attributes (our own widget markup has fixed ones);
    `allow_tags` accepts some tags (pandas puts a `<style>` block before its tables).
    """
    inspector = _Inspector(allow_style, frozenset(allow_tags))
    inspector.feed(markup)
    inspector.close()
    return inspector.problems
