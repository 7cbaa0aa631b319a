"""Markdown of users' files rendered to HTML that cannot carry script.

markdown-it-py with raw HTML disabled escapes every ``<`` of the source; links
are limited to a small allow-list of schemes (no ``javascript:``, ``data:``,
``vbscript:``), checked after removing what browsers ignore in a URL.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

#: Schemes a rendered link or image may use; anything else (or none) must be a relative URL
_SAFE_SCHEMES = ("http", "https", "mailto")
# Browsers drop ASCII control characters and whitespace inside a scheme ("java\tscript:")
_IGNORED = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def safe_url(url: str) -> bool:
    """Whether *url* may be a link target: a safe scheme, or relative."""
    compact = _IGNORED.sub("", url)
    match = _SCHEME.match(compact)
    if match is None:
        return not compact.lower().startswith(("&#", "%"))  # an encoded scheme: refuse
    return match.group(1).lower() in _SAFE_SCHEMES


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.validateLink = safe_url
    return md


_MD = _renderer()


def render(text: str) -> str:
    """HTML of Markdown *text* (raw HTML in it is shown as text, unsafe links are not linked)."""
    return _MD.render(text)
