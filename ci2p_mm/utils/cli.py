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

The tools' argparse pieces live here too: the ``type`` checks
:func:`at_least`, :func:`torch_device` and :func:`output_file` (a bad value
is argparse's one line naming the option, before any work) and
:class:`DefaultsHelpFormatter`.
"""
import argparse
import os.path as osp
import sys
from typing import Callable, List, Optional

import torch

from .errors import UserError
from .io import OutputError, check_output_path

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


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``low`` (argparse's one-line
    error then names the option)."""

    def count(text: str) -> int:
        if int(text) < low:
            raise argparse.ArgumentTypeError(f'must be >= {low}, not {text}')
        return int(text)

    return count


def torch_device(text: str) -> str:
    """An argparse ``type``: a torch device this machine has (``cpu``,
    ``cuda``, ``cuda:1``). torch would fail later, in a traceback, at the
    first tensor moved there."""
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if device.type == 'cuda':
        count = torch.cuda.device_count()  # 0 without a driver
        if count <= (device.index or 0):
            raise argparse.ArgumentTypeError(
                f'{text}: this machine has {count} CUDA device(s)')
    return text


def output_file(text: str) -> str:
    """An argparse ``type``: a file an output may be written to
    (:func:`~ci2p_mm.utils.io.check_output_path`: not a folder, a block
    device or a socket; in a writable place), so that a tool refuses it
    before its minutes of work, not when it writes."""
    try:
        check_output_path(text)
    except OutputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's ``ArgumentDefaultsHelpFormatter``, but an option that is
    unset by default or whose help names its default itself keeps its help
    as written (argparse would add ``(default: None)`` to both)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or '(default' in (action.help or ''):
            return action.help
        return super()._get_help_string(action)
