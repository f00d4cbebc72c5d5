"""The one way a command line under ``tools/`` runs its package ``main``.

Every CLI's logic is ``main(argv: list | None = None) -> int`` in the
package; the script under ``tools/`` is a shim of a few lines::

    from ci2p_mm.utils.cli import run
    from ci2p_mm.some.module import main

    if __name__ == '__main__':
        run(main)

:func:`run` turns a :class:`~ci2p_mm.utils.errors.UserError` into one line
``<script>: error: <message>`` and exit status 2 (argparse's status for a
usage error), and ``main``'s return value into the exit status; standard
output is line-buffered, so progress reaches a pipe as it is printed.
"""
import os.path as osp
import sys
from typing import Callable, List, Optional

from .errors import UserError

#: Exit status of a refused run (as argparse exits on bad options).
USER_ERROR_STATUS = 2


def run(main: Callable[[Optional[List[str]]], Optional[int]],
        argv: Optional[List[str]] = None) -> None:
    """Call ``main(argv)`` and exit with its status; one line per user
    error."""
    prog = osp.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'ci2p'
    # Progress lines reach a pipe (a log, a job with a time limit, the
    # demo) as they are printed, not at exit.
    if hasattr(sys.stdout, 'reconfigure'):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        status = main(argv)
    except UserError as err:
        print(f'{prog}: error: {err}', file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
    sys.exit(status if isinstance(status, int) else 0)
