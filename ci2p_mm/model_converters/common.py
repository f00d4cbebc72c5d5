"""What every converter of an authors' checkpoint does, in one place.

Read the file safely, take its state dict (bare or under ``state_dict`` /
``model``; weights holding NaN or inf are refused, naming them), rename the
keys (the family's rules), find the config whose classifier the result fits
*exactly* (every key, every shape), and only then write an mmpretrain
checkpoint (``state_dict`` with ``backbone.*`` / ``head.*``, ``meta`` with
the config's class names, one per output) atomically. A file that fits no
config is refused with the keys and shapes that do not fit, and nothing is
written.

A family module supplies a :class:`Family`: its config folder, and a
``convert(state_dict) -> (state_dict, source format)`` function that raises
:class:`ConversionError` when the keys are in no format it knows.
"""
import argparse
import datetime
import functools
import glob
import os.path as osp
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import mmpretrain
import torch
from mmengine.config import Config
from mmpretrain.apis import ModelHub
from mmpretrain.registry import DATASETS, MODELS

from ci2p_mm.engine.checkpoint import (check_class_names, head_num_classes,
                                       refuse_non_finite)
from ci2p_mm.utils.errors import UserError, listing
from ci2p_mm.utils.io import (check_output_path, load_torch_file,
                              printable_path, save_atomic)
from ci2p_mm.utils.package_files import configs_root
from ci2p_mm.utils.state_dicts import compare_state_dicts

StateDict = Dict[str, torch.Tensor]
#: ``(pattern, replacement)``: ``re.fullmatch`` on a key, then ``expand``.
RenameRule = Tuple[str, str]
#: Containers in which training scripts keep the model's weights.
WRAPPERS = ('state_dict', 'model')


class ConversionError(UserError):
    """A checkpoint cannot be converted as it is; the message says why."""


class Family(NamedTuple):
    """One model family's converter."""
    name: str  # 'CvT'
    config_dir: str  # 'cvt' (under configs/)
    #: state dict in a source format -> (mmpretrain keys, format name)
    convert: Callable[[StateDict], Tuple[StateDict, str]]
    #: the formats, for --help and errors
    formats: str

    def main(self, argv=None) -> int:
        """The command line ``<family>_to_mmpretrain.py SRC DST``."""
        parser = argparse.ArgumentParser(
            description=f'Convert {self.name} weights ({self.formats}) to '
            f'an mmpretrain checkpoint that loads strictly into the matching '
            f'config under configs/{self.config_dir}/.')
        parser.add_argument('src', help='the downloaded checkpoint')
        parser.add_argument('dst', help='the mmpretrain checkpoint to write')
        parser.add_argument(
            '--config',
            help='the config (model name or path) the weights must fit; '
            'default: the one config they fit, found from their shapes')
        args = parser.parse_args(argv)
        name = convert_checkpoint(self, args.src, args.dst, args.config)
        config = osp.relpath(config_file(name))
        dst = printable_path(args.dst)
        print(f'Wrote {dst}: fits {name} ({config}). Evaluate with\n'
              f'  python tools/test.py {config} {dst}')
        return 0


# ---------------------------------------------------------------- reading --
def read_state_dict(path: str) -> Tuple[StateDict, str]:
    """The tensors of ``path`` and where they were (``'state_dict'``,
    ``'model'`` or ``''`` for a bare state dict).

    Training scripts save their ``argparse.Namespace`` beside the weights
    (timm's ``train.py``: ``args``; DeiT-style ``main.py``: ``args``); it is
    allowed by torch's safe loading here, nothing else is.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        obj = load_torch_file(path, ConversionError, what=f'Checkpoint {path}')
    if not isinstance(obj, dict):
        raise ConversionError(f'Checkpoint {path} holds a '
                              f'{type(obj).__name__}, not a dict of weights.')
    where = next((w for w in WRAPPERS if isinstance(obj.get(w), dict)), '')
    obj = obj[where] if where else obj
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) != len(obj):
        others = sorted(
            str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise ConversionError(
            f'Checkpoint {path} has no state dict of tensors: expected one '
            f'bare or under {" / ".join(repr(w) for w in WRAPPERS)}; found '
            f'non-tensor entries {listing(others)}.')
    if all(k.startswith('module.') for k in tensors):  # saved from DDP
        tensors = {k[len('module.'):]: v for k, v in tensors.items()}
    return tensors, where


def rename(state_dict: StateDict,
           rules: Sequence[RenameRule],
           prefix: str = '') -> StateDict:
    """Each key through the first rule that matches it whole; keys that no
    rule matches get ``prefix`` (so that the fit check reports them)."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            match = pattern.fullmatch(key)
            if match:
                out[match.expand(replacement)] = value
                break
        else:
            out[prefix + key] = value
    return out


def require_format(state_dict: StateDict, family: str,
                   signatures: Dict[str, str]) -> str:
    """The name of the first format whose signature key the state dict
    has; an error naming them all otherwise."""
    for name, signature in signatures.items():
        if signature in state_dict:
            return name
    known = '; '.join(f'{name} (with {sig!r})'
                      for name, sig in signatures.items())
    raise ConversionError(
        f'This is not a {family} checkpoint in a format the converter knows '
        f'({known}). Its first keys: {listing(sorted(state_dict), 4)}.')


# ----------------------------------------------------------- the configs --
def family_configs(family: Family, num_values: int) -> List[str]:
    """The family's config names (``cvt-13_8xb256_in1k``, ...), those
    whose metafile ``Parameters`` are nearest ``num_values`` (the tensor
    sizes of a state dict, summed) first, so that the matching config is
    usually the first one built."""
    folder = osp.join(configs_root(), family.config_dir)
    # The model index (registered by ``import ci2p_mm``) names every config
    # with its metafile's Parameters; read without parsing the configs.
    params = {
        osp.splitext(osp.basename(m.config))[0]: m.metadata.parameters or 0
        for m in ModelHub._models_dict.values()
        if m.config and osp.dirname(m.config) == folder
    }
    return sorted(sorted(params), key=lambda n: abs(params[n] - num_values))


def config_file(name: str) -> str:
    """A config's path from a path or its name (the model index names a
    config by its file name: ``cvt-13_8xb256_in1k``)."""
    if osp.isfile(name):
        return name
    stem = osp.splitext(osp.basename(name))[0]
    found = glob.glob(
        osp.join(configs_root(), '**', f'{stem}.py'), recursive=True)
    if len(found) != 1:
        raise ConversionError(f'--config {name}: no config of that name under '
                              f'{configs_root()} (give a model name such as '
                              f'cvt-13_8xb256_in1k or a config path).')
    return found[0]


@functools.lru_cache(maxsize=None)
def load_config(config: str):
    """The parsed config (cached: parsing resolves mmpretrain's bases)."""
    return Config.fromfile(config_file(config))


@functools.lru_cache(maxsize=None)
def expected_state_dict(config: str) -> StateDict:
    """The classifier's state dict of ``config``, built on the meta device
    (shapes only: no memory, no initialisation)."""
    model = load_config(config).model.copy()
    model.pop('train_cfg', None)  # batch augments: no weights, only logs
    with torch.device('meta'):
        return MODELS.build(model).state_dict()


def matching_config(state_dict: StateDict,
                    family: Family,
                    config: Optional[str] = None) -> str:
    """The one config whose model the converted ``state_dict`` fits
    exactly (keys and shapes), or ``config`` if it does; otherwise a
    :class:`ConversionError` naming what does not fit."""
    candidates = [config] if config else family_configs(
        family, sum(v.numel() for v in state_dict.values()))
    mismatches = {}
    for name in candidates:
        mismatch = compare_state_dicts(expected_state_dict(name), state_dict)
        if not mismatch:
            return name
        mismatches[name] = mismatch
    if config:
        raise ConversionError(
            f'The converted weights do not fit --config {config}: '
            f'{mismatches[config].describe()}. Is the file another variant? '
            f'Leave out --config to find the matching one.')
    # the fewest keys missing, unexpected or of another shape
    closest = min(mismatches, key=lambda n: sum(map(len, mismatches[n])))
    raise ConversionError(
        f'The converted weights fit none of the {family.name} configs '
        f'({", ".join(candidates)}). Closest, {closest}: '
        f'{mismatches[closest].describe()}.')


# ---------------------------------------------------------------- writing --
def dataset_meta(config: str) -> dict:
    """The class names of the config's test set (ImageNet's 1000 for the
    ImageNet configs), so that inferencers name the classes."""
    cfg = load_config(config)
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    cls = DATASETS.get(dataset.get('type', '')) if dataset else None
    classes = (getattr(cls, 'METAINFO', None) or {}).get('classes')
    if classes:
        check_class_names(classes, head_num_classes(cfg.model),
                          f'The test set of {config}')
    return dict(classes=tuple(classes)) if classes else {}


# ----------------------------------------------------------------- the CLI --
def convert_checkpoint(family: Family,
                       src: str,
                       dst: str,
                       config: Optional[str] = None) -> str:
    """Convert ``src`` into ``dst``; return the matching config's name.

    ``dst`` gets ``{'state_dict', 'meta'}``, written atomically (its folder
    created if needed)."""
    check_output_path(dst, src, what='DST')
    state_dict, where = read_state_dict(src)
    refuse_non_finite(state_dict, src)
    converted, source_format = family.convert(state_dict)
    name = matching_config(converted, family, config)
    meta = dict(
        converted_from=dict(
            file=printable_path(osp.basename(src)),
            format=source_format,
            container=where or 'bare state dict',
            converter=f'{family.name} converter of ci2p_mm'),
        config=osp.splitext(osp.basename(config_file(name)))[0],
        cfg=load_config(name).pretty_text,
        dataset_meta=dataset_meta(name),
        mmpretrain_version=mmpretrain.__version__,
        time=datetime.datetime.now().strftime('%Y%m%d_%H%M%S'))
    converted = {k: v.contiguous() for k, v in converted.items()}
    save_atomic(dict(state_dict=converted, meta=meta), dst)
    return name
