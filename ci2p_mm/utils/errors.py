"""The one base class for errors a user can act on.

A :class:`UserError`'s message is the whole story: what is wrong, the file
or setting at fault and what to do. Command lines print it as one line
(``tool.py: error: ...``, see :func:`ci2p_mm.utils.cli.run`) instead of a
traceback; every other exception keeps its traceback, because it is a bug.
"""


class UserError(Exception):
    """An error caused by input or settings, explained in its message."""


class ConfigError(UserError, ValueError):
    """A config that cannot be read, or a setting in it that cannot work;
    the message names the file or the key."""


def listing(items, limit: int = 5, sep: str = ', ') -> str:
    """The first ``limit`` items joined, and how many more: ``'a, b and 3
    more'`` (messages name a few of many)."""
    items = [str(i) for i in items]
    more = f' and {len(items) - limit} more' if len(items) > limit else ''
    return sep.join(items[:limit]) + more
