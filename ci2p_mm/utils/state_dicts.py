"""The weights in a loaded checkpoint, and what keeps them from loading
exactly, for error messages."""
import re
from typing import Callable, Dict, List, NamedTuple, Sequence

import torch

from .errors import listing


class StateDictMismatch(NamedTuple):
    missing: List[str]  # in the model, not in the file
    unexpected: List[str]  # in the file, not in the model
    wrong_shape: List[str]  # 'key: file (..) vs model (..)'

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def describe(self) -> str:
        """``'missing from the file: ...; not in the model: ...; different
        shapes: ...'``, the parts that apply."""
        parts = (('missing from the file', self.missing,
                  5), ('not in the model', self.unexpected, 5),
                 ('different shapes', self.wrong_shape, 3))
        return '; '.join(f'{what}: {listing(keys, n)}'
                         for what, keys, n in parts if keys)


def compare_state_dicts(
        expected: Dict[str, torch.Tensor],
        given: Dict[str, torch.Tensor],
        may_be_missing: Callable[[str], bool] = lambda key: False,
        first: Callable[[str], bool] = lambda key: False) -> StateDictMismatch:
    """Compare a file's ``given`` tensors with a model's ``expected`` ones.

    Keys for which ``may_be_missing`` is true are not reported missing;
    shape mismatches of keys for which ``first`` is true are listed first.
    """
    missing = [k for k in expected if k not in given and not may_be_missing(k)]
    unexpected = [k for k in given if k not in expected]
    wrong_shape = [
        f'{k}: file {tuple(given[k].shape)} vs model {tuple(v.shape)}'
        for k, v in sorted(expected.items(), key=lambda kv: not first(kv[0]))
        if k in given and given[k].shape != v.shape
    ]
    return StateDictMismatch(missing, unexpected, wrong_shape)


def extract_state_dict(checkpoint,
                       filename: str,
                       revise_keys: Sequence = (),
                       error: Callable[[str], Exception] = ValueError,
                       what: str = 'Checkpoint') -> Dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint: its ``state_dict`` entry, or the
    checkpoint itself (a bare state dict), keys revised by the ``(pattern,
    replacement)`` pairs of ``revise_keys`` as mmengine does; else
    ``error(message)`` naming ``what`` and ``filename``."""
    if not isinstance(checkpoint, dict):
        raise error(f'{what} {filename} holds a {type(checkpoint).__name__}, '
                    f'not a dict of weights.')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict) or not state_dict or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise error(f'{what} {filename} has no state_dict of tensors '
                    f'(top-level keys: {sorted(map(str, checkpoint))[:8]}).')
    for pattern, replacement in revise_keys:
        state_dict = {
            re.sub(pattern, replacement, k): v
            for k, v in state_dict.items()
        }
    return state_dict
