"""What every layer of ``core`` shares; this module imports nothing from ``core``.

* :data:`Progress`: the callback long jobs report to (the CLI passes a tqdm bar, the app ``st.progress``);
  :func:`prefixed` puts a step's name in front of its messages.
* :class:`UserError`: the base of every problem a user can fix — a bad file, option, key, server answer, a
  damaged artifact. Its message is one sentence, and the CLI, the job worker and the app show it as one line
  without a traceback. Any other exception is a bug: its full traceback is kept (the CLI's ``--verbose``,
  the job's log in the app).
* :class:`ConfigError`: an unknown option, a value of the wrong type or out of its range.
"""

from __future__ import annotations

from typing import Callable

# progress(done, total, message)
Progress = Callable[[int, int, str], None]


def prefixed(progress: Progress | None, prefix: str) -> Progress | None:
    """``progress`` with ``"<prefix>: "`` before every message (None stays None)."""
    if progress is None:
        return None
    return lambda done, total, message: progress(done, total, f"{prefix}: {message}")


class UserError(Exception):
    """A problem the user can fix; ``str(err)`` is one sentence saying what and how."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class ConfigError(UserError, ValueError):
    """An unknown option, a value of the wrong type, or a value outside its range (one sentence)."""


def describe_bug(err: BaseException) -> str:
    """One line for an exception that is not a :class:`UserError` (its traceback goes to the log)."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"unexpected {type(err).__name__}{': ' + first if first else ''}"
