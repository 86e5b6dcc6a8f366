"""Markdown for messages, rendered to HTML that is safe to put into the page.

Two layers, because a message comes from someone else: markdown-it-py parses CommonMark
with raw HTML switched off (``<script>`` in a message is shown as text) and refuses
``javascript:``/``vbscript:``/``file:``/``data:`` links; then nh3 (the Ammonia sanitizer)
keeps only an allow-list of tags and attributes and only http(s)/mailto links, so even a
parser bug cannot put markup of the sender's choosing into the page. Images are not kept:
loading a sender's image URL would tell them when the message was read.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = (MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
       .enable("table").enable("strikethrough"))

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "ol": {"start"},
                      "th": {"style"}, "td": {"style"}}


def markdown_html(text: str) -> str:
    """Sanitised HTML of the markdown ``text``."""
    raw = _md.render(text)
    return nh3.clean(
        raw, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties={"text-align"}, strip_comments=True)
