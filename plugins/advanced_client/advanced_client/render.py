"""Markdown from models and people turned into HTML that is safe to put in the page.

Two layers, so that neither alone has to be perfect:

1. markdown-it-py (CommonMark, tables and strikethrough) with raw HTML **off**: a
   ``<script>`` or ``<img onerror=...>`` in the text comes out as visible text, not as
   markup; links whose scheme is not http(s)/mailto are not made into links at all;
   fenced code is highlighted with Pygments (class names only, no inline style);
2. nh3 (the Rust ``ammonia`` sanitiser) on the result with an allowlist of tags,
   attributes, classes and URL schemes: whatever the first layer let through by mistake
   (a markdown-it bug, a plugin of it) is removed here. ``javascript:``, ``data:`` and
   ``vbscript:`` URLs, event-handler attributes and ``style`` never survive.

Links get ``rel="noopener noreferrer nofollow"`` and ``target="_blank"``: the desktop
window opens them in the system browser, never inside the page.
"""

from __future__ import annotations

import functools
import html
import re
from typing import TYPE_CHECKING, Any

import nh3

# markdown-it and Pygments are imported with the first answer rendered: ~30 ms of every
# app start otherwise.
if TYPE_CHECKING:
    from markdown_it import MarkdownIt

MAX_INPUT = 200_000  # characters rendered; the rest is cut (a model can ramble)
SAFE_SCHEMES = {"http", "https", "mailto"}
ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "kbd", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody",
    "tr", "th", "td", "span", "div",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "target"},
    "th": {"align"}, "td": {"align"},
    "ol": {"start"},
}
# Pygments' short class names (tokens) plus ours; nh3 drops any other class.
_TOKEN_CLASSES = {
    "hll", "c", "err", "k", "o", "ch", "cm", "cp", "cpf", "c1", "cs", "gd", "ge", "gr", "gh",
    "gi", "go", "gp", "gs", "gu", "gt", "kc", "kd", "kn", "kp", "kr", "kt", "m", "s", "na",
    "nb", "nc", "no", "nd", "ni", "ne", "nf", "nl", "nn", "nt", "nv", "ow", "w", "mb", "mf",
    "mh", "mi", "mo", "sa", "sb", "sc", "dl", "sd", "s2", "se", "sh", "si", "sx", "sr", "s1",
    "ss", "bp", "fm", "vc", "vg", "vi", "vm", "il", "n", "p", "l", "g", "x",
}
ALLOWED_CLASSES = {
    "span": _TOKEN_CLASSES,
    "div": {"highlight", "codeblock"},
    "pre": {"code"},
    "code": {"language"},
}
_LANG = re.compile(r"^[A-Za-z0-9_+#.-]{1,30}$")


@functools.cache
def _formatter() -> Any:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """Pygments for a known language name, else the code escaped as plain text."""
    from pygments import highlight
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    lexer = None
    if lang and _LANG.match(lang):
        try:
            lexer = get_lexer_by_name(lang)
        except ClassNotFound:
            lexer = None
    body = highlight(code, lexer, _formatter()) if lexer else html.escape(code)
    label = html.escape(lang) if lexer else ""
    return (f'<pre class="code"><code class="language" title="{label}">{body}</code></pre>')


def _safe_link(url: str) -> bool:
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    # A relative link has no meaning in a chat answer, and #/ ones would move the page.
    return scheme in SAFE_SCHEMES


def _image_as_link(_renderer, tokens, idx, _options, _env):  # type: ignore[no-untyped-def]
    """An image becomes a link to it: the page's CSP loads images from the app only, and
    a model's answer should not make the app fetch anything by itself."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = html.escape(token.content or "image")
    if not _safe_link(src):
        return f"[image: {alt}]"
    return f'<a href="{html.escape(src, quote=True)}">[image: {alt}]</a>'


@functools.cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _highlight}).enable(["table", "strikethrough"])
    md.validateLink = _safe_link  # type: ignore[method-assign]
    md.add_render_rule("image", _image_as_link)
    return md


def render_markdown(text: str) -> str:
    """``text`` (Markdown) as sanitised HTML; see the module docstring."""
    raw = _markdown().render(text[:MAX_INPUT])
    return sanitize_html(raw)


def sanitize_html(fragment: str) -> str:
    """The allowlist pass alone (also for HTML that did not come from Markdown)."""
    return nh3.clean(
        fragment, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
        url_schemes=SAFE_SCHEMES, allowed_classes=ALLOWED_CLASSES,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        clean_content_tags={"script", "style"}, strip_comments=True)


def plain_text(text: str, limit: int = 4000) -> str:
    """Markdown reduced to speakable text (for read-aloud): no code fences, link targets,
    emphasis marks or table rules."""
    text = re.sub(r"```.*?```", " (code block) ", text, flags=re.S)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_`#>|~]+", " ", text)
    text = re.sub(r"^\s*[-+]\s+", "", text, flags=re.M)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:limit]
