"""Checking the ``arch`` and ``out_indices`` settings of the backbones."""
from typing import Dict, Iterable, List, Sequence, Union


def resolve_arch(model: str, arch_zoo: Dict[str, dict], arch: Union[str,
                                                                    dict],
                 required: Iterable[str]) -> dict:
    """``arch_zoo[arch]`` for a name, or the dict itself, with ``required``
    keys; a clear error naming ``model`` otherwise."""
    if isinstance(arch, str):
        if arch.lower() not in arch_zoo:
            raise ValueError(f'{model} arch {arch!r} is not one of '
                             f'{sorted(arch_zoo)}.')
        arch = arch_zoo[arch.lower()]
    missing = set(required) - set(arch)
    if missing:
        raise ValueError(f'{model} arch dict lacks {sorted(missing)}.')
    return arch


def stage_indices(out_indices: Union[int, Sequence[int]], num_stages: int,
                  what: str = 'stage') -> List[int]:
    """Sorted non-negative indices; negative ones count from the end."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    indices = sorted(i % num_stages for i in out_indices
                     if -num_stages <= i < num_stages)
    if len(indices) != len(out_indices):
        raise ValueError(f'out_indices {list(out_indices)} must be {what} '
                         f'indices in [-{num_stages}, {num_stages}).')
    return indices
