"""Reproducible weights "at trained-network scale" for reference checks.

The converters are checked against the authors' own code: a generator
script (``tests/fixtures/hybrids_reference/make_*_fixture.py``) builds the
authors' model from a snapshot of their repository, fills it with
:func:`make_weights` and stores the logits it computes in a small JSON
fixture beside the key list, the seed and the input. A test recreates the
same state dict (same keys, shapes, seed: same numbers), converts it with
the converter and compares our model's logits with the stored ones. Only
the fixture is committed, never the weights or the authors' code.

Numbers come from numpy's legacy ``RandomState``, whose streams numpy
guarantees not to change between versions; each tensor has its own seed
(from the fixture seed and its key), so the order of keys does not matter.

Scales are those of a trained network, so that a wrong scale or a swapped
tensor changes the logits visibly (with a fresh init's std of 0.02
attention is nearly uniform and a missing 1/sqrt(d) hardly shows):

* conv / linear weights (2-D or more): N(0, 1/fan_in), unit-variance
  activations;
* norm weights (1-D ``weight``): 1 + N(0, 0.2^2); all 1-D biases:
  N(0, 0.1^2);
* BatchNorm running means N(0, 0.2^2), running variances U(0.5, 1.5);
* anything else (class tokens, position embeddings): N(0, 0.5^2).
"""
import argparse
import json
import subprocess
import zlib
from collections import OrderedDict
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch

#: What a fixture's ``keys`` list holds per tensor.
KeySpec = Tuple[str, Sequence[int], str]


def _rng(seed: int, key: str) -> np.random.RandomState:
    return np.random.RandomState(
        (seed * 1000003 + zlib.crc32(key.encode())) % 2**32)


def make_tensor(key: str, shape: Sequence[int], dtype: str,
                seed: int) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    if dtype == 'int64':  # num_batches_tracked
        return torch.zeros(shape, dtype=torch.int64)
    rng = _rng(seed, key)
    name = key.rsplit('.', 1)[-1]
    if name == 'running_var':
        values = rng.uniform(0.5, 1.5, shape)
    elif name == 'running_mean':
        values = rng.normal(0., 0.2, shape)
    elif name == 'weight' and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        values = rng.normal(0., fan_in**-0.5, shape)
    elif name == 'weight':
        values = 1. + rng.normal(0., 0.2, shape)
    elif name == 'bias':
        values = rng.normal(0., 0.1, shape)
    else:
        values = rng.normal(0., 0.5, shape)
    return torch.from_numpy(np.asarray(values, dtype=np.float32))


def make_weights(keys: Iterable[KeySpec], seed: int) -> 'OrderedDict':
    """A state dict with the given keys, shapes and dtypes."""
    return OrderedDict((key, make_tensor(key, shape, dtype, seed))
                       for key, shape, dtype in keys)


def key_specs(state_dict: Dict[str, torch.Tensor]) -> List[KeySpec]:
    """The ``keys`` list of a fixture, from a model's state dict."""
    specs = []
    for key, value in state_dict.items():
        if value.dtype not in (torch.float32, torch.int64):
            raise TypeError(f'{key}: unexpected dtype {value.dtype}')
        specs.append((key, list(value.shape),
                      'int64' if value.dtype == torch.int64 else 'float32'))
    return specs


def make_input(shape: Sequence[int], seed: int) -> torch.Tensor:
    """A normalised-image-like input, N(0, 1)."""
    values = _rng(seed, 'input').normal(0., 1., tuple(shape))
    return torch.from_numpy(values.astype(np.float32))


def checksum(state_dict: Dict[str, torch.Tensor]) -> float:
    """Sum of |x| over all float tensors: shows a changed random stream."""
    return float(
        sum(v.double().abs().sum() for v in state_dict.values()
            if v.is_floating_point()))


def save_fixture(path: str, **fields) -> None:
    with open(path, 'w') as f:
        json.dump(fields, f, indent=None, separators=(',', ':'))
        f.write('\n')


def load_fixture(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------ for the generator scripts --
def add_reference_arguments(parser: argparse.ArgumentParser,
                            repository: str) -> None:
    """The arguments every ``make_*_fixture.py`` takes."""
    parser.add_argument('repo', help=f'a snapshot of {repository}')
    parser.add_argument('--seed', type=int, default=19)
    parser.add_argument(
        '--commit',
        help='the snapshot commit, if the '
        'folder is not a git checkout')


def commit_of(repo: str) -> str:
    try:
        return subprocess.run(['git', '-C', repo, 'rev-parse', 'HEAD'],
                              capture_output=True,
                              text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown (not a git checkout)'


def record_reference(model: torch.nn.Module, input_shape: Sequence[int],
                     seed: int, out: str, reference: dict, **fields) -> None:
    """Fill the authors' ``model`` (eval mode) with :func:`make_weights`,
    run it on :func:`make_input` and save the fixture ``out``."""
    torch.set_num_threads(1)  # the same reductions on every machine
    model.eval()
    keys = key_specs(model.state_dict())
    weights = make_weights(keys, seed)
    model.load_state_dict(weights, strict=True)
    x = make_input(input_shape, seed)
    with torch.no_grad():
        logits = model(x)
    save_fixture(
        out,
        reference=dict(reference, torch=torch.__version__),
        **fields,
        seed=seed,
        input_shape=list(x.shape),
        checksum=checksum(weights),
        keys=keys,
        logits=[[round(float(v), 7) for v in row] for row in logits])
    print(f'{out}: {len(keys)} keys, logits {tuple(logits.shape)}, '
          f'|max| {logits.abs().max():.3f}, std {logits.std():.3f}')
