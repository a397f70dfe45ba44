"""User text (titles, categories, file names, error messages quoting a file) shown exactly as written.

Streamlit renders Markdown in ``st.markdown``, captions, alerts and progress texts — emphasis, links,
images, ``$math$``, ``:emoji:`` codes, ``:red[colour]`` directives — so a title such as ``*Save 27%*`` or
``SHAKE YOUR $$ MAKER`` would lose its characters, and HTML must never be rendered at all. :func:`md` makes
any text literal in a Markdown context: CommonMark lets every ASCII punctuation character be escaped with a
backslash, which also disarms Streamlit's own directives. One thing survives escaping: GitHub-flavoured
Markdown turns a URL or an e-mail address found in the *text* into a link, so :func:`md` also puts an
invisible word joiner (U+2060) after ``http``, ``www`` and ``@``. Titles themselves are never drawn through
Markdown: pages show them with ``st.html`` and ``html.escape`` (exact, nothing added). Both checked in
Chromium by tests/test_browser.py.
"""

from __future__ import annotations

import re
import string

_ESCAPED = {ord(c): "\\" + c for c in string.punctuation}
_LINK_STARTS = re.compile(r"(?i)(https?|www|ftp)(?=[:.])|(@)")
WORD_JOINER = "\u2060"


def md(text: object) -> str:
    """``text`` as literal Markdown: shown as written (plus an invisible word joiner that stops URLs and e-mail
    addresses from becoming links), never as formatting, HTML or a link."""
    return _LINK_STARTS.sub(lambda m: m.group(0) + WORD_JOINER, str(text)).translate(_ESCAPED)
