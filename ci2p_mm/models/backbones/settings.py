"""The one way every backbone here reads ``arch``, ``out_type`` and
``out_indices``.

Messages follow mmpretrain's backbones (``Arch x is not in default archs
...``, ``Custom arch needs a dict with keys ...``, ``Invalid out_indices
...``), raised as ``ValueError`` so that they survive ``python -O``.
"""
from typing import Any, Dict, Iterable, List, Sequence, Union


def lookup_arch(model: str, arch_zoo: Dict[str, Any], name: str) -> Any:
    """``arch_zoo[name]`` (any case), or mmpretrain's error."""
    if name.lower() not in arch_zoo:
        raise ValueError(f'{model}: Arch {name!r} is not in default archs '
                         f'{sorted(arch_zoo)}.')
    return arch_zoo[name.lower()]


def resolve_arch(model: str, arch_zoo: Dict[str, dict], arch: Union[str, dict],
                 required: Iterable[str]) -> dict:
    """``arch_zoo[arch]`` for a name (any case), or the dict itself, which
    must have the ``required`` keys."""
    if isinstance(arch, str):
        arch = lookup_arch(model, arch_zoo, arch)
    if not isinstance(arch, dict):
        raise ValueError(f'{model}: arch must be a name or a dict, got '
                         f'{type(arch).__name__}.')
    missing = set(required) - set(arch)
    if missing:
        raise ValueError(f'{model}: Custom arch needs a dict with keys '
                         f'{sorted(required)}; missing {sorted(missing)}.')
    return dict(arch)


def check_out_type(out_type: str, out_types: Iterable[str]) -> str:
    """``out_type`` if it is one of ``out_types``, else mmpretrain's error."""
    if out_type not in out_types:
        raise ValueError(f'Unsupported out_type {out_type!r}; choose '
                         f'from {sorted(out_types)}.')
    return out_type


def stage_indices(out_indices: Union[int, Sequence[int]],
                  num_stages: int,
                  what: str = 'stage') -> List[int]:
    """Sorted non-negative indices; negative ones count from the end; an
    index outside ``[-num_stages, num_stages)`` is refused (never wrapped)."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    if not isinstance(out_indices, Sequence) or not all(
            isinstance(i, int) for i in out_indices):
        raise ValueError(f'"out_indices" must be an int or a sequence of '
                         f'ints, got {out_indices!r}.')
    bad = [i for i in out_indices if not -num_stages <= i < num_stages]
    if bad:
        raise ValueError(f'Invalid out_indices {bad}: there are {num_stages} '
                         f'{what}s, so indices lie in [-{num_stages}, '
                         f'{num_stages}).')
    return sorted(i % num_stages for i in out_indices)
