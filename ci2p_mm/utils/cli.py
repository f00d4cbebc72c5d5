"""The one way a command line under ``tools/`` runs its package ``main``.

Every CLI's logic is ``main(argv: list | None = None) -> int`` in the
package; the script under ``tools/`` is a shim of a few lines::

    from ci2p_mm.utils.cli import run
    from ci2p_mm.some.module import main

    if __name__ == '__main__':
        run(main)

:func:`run` turns a :class:`~ci2p_mm.utils.errors.UserError` into one line
``<script>: error: <message>`` and exit status 2 (argparse's status for a
usage error), and ``main``'s return value into the exit status.
"""
import os
import os.path as osp
import sys
from typing import Callable, List, Optional, Sequence

from .errors import UserError

#: Exit status of a refused run (as argparse exits on bad options).
USER_ERROR_STATUS = 2


def run(main: Callable[[Optional[List[str]]], Optional[int]],
        argv: Optional[List[str]] = None) -> None:
    """Call ``main(argv)`` and exit with its status; one line per user
    error."""
    prog = osp.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'ci2p'
    try:
        status = main(argv)
    except UserError as err:
        print(f'{prog}: error: {err}', file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
    sys.exit(status if isinstance(status, int) else 0)


def check_output_file(path: str, flag: str,
                      inputs: Sequence[str] = ()) -> None:
    """Refuse an output file (the argument ``flag``) before any work: a
    folder, a device or FIFO (a rename would replace it), one of ``inputs``
    (through links too), or a place that cannot be written."""
    folder = osp.dirname(osp.abspath(path))
    while not osp.exists(folder):  # the folders that will be created
        folder = osp.dirname(folder)
    if osp.isdir(path):
        problem = 'is a folder'
    elif osp.exists(path) and not osp.isfile(path):
        problem = 'is not a regular file (a device, FIFO or socket)'
    elif osp.isfile(path) and any(
            osp.exists(i) and osp.samefile(path, i) for i in inputs):
        problem = 'is an input of this command'
    elif not osp.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        problem = f'cannot be written ({folder} is not a writable folder)'
    else:
        return
    raise UserError(f'{flag} {path} {problem}; give the path of a file to '
                    f'write.')
