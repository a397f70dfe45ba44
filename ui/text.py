"""User text (titles, categories, file names, error messages quoting a file) shown exactly as written.

Streamlit renders Markdown in ``st.markdown``, captions, alerts and progress texts — emphasis, links,
images, ``$math$``, ``:emoji:`` codes, ``:red[colour]`` directives — so a title such as ``*Save 27%*`` or
``SHAKE YOUR $$ MAKER`` would lose its characters, and HTML must never be rendered at all. :func:`md` makes
any text literal in a Markdown context: CommonMark lets every ASCII punctuation character be escaped with a
backslash, which also disarms Streamlit's own directives (checked in Chromium by tests/test_browser.py).
For HTML contexts (``st.html``) use ``html.escape``.
"""

from __future__ import annotations

import string

_ESCAPED = {ord(c): "\\" + c for c in string.punctuation}


def md(text: object) -> str:
    """``text`` as literal Markdown: shown exactly as written, never as formatting, HTML or a link."""
    return str(text).translate(_ESCAPED)
