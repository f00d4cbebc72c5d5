"""Loading mmengine's own checkpoints under torch's safe ``weights_only``.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
0.10.7 calls ``torch.load`` without the argument. Its full checkpoints
pickle a few types beyond tensors: numpy arrays and scalars (in the message
hub's logs), ``HistoryBuffer``, and ``getattr(HistoryBuffer, 'min')``-style
references to its statistics methods. We allow exactly those, and map the
pickled ``getattr`` to a version that resolves only HistoryBuffer's
statistics methods, so a foreign file can still not call anything else.
Safety is never switched off.

Below that: reading any checkpoint with errors that name the file (and
refusing weights that hold NaN or inf, which would load and score
silently), checking that it fits the model (keys, shapes, CI2P codec)
before anything is loaded, since mmengine loads with ``strict=False`` and
only warns, and that its class names fit the head. The config text a
checkpoint records is parsed, never executed
(:mod:`ci2p_mm.utils.config_text`).
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint,
                                        _load_checkpoint_to_model)
from mmpretrain.registry import WEIGHT_INITIALIZERS
from numpy.core import multiarray  # numpy<2 (compressai pins it)

from ci2p_mm.codec import canonical_codec_name
from ci2p_mm.models import CI2PEncoder
from ci2p_mm.utils import is_ci2p_backbone
from ci2p_mm.utils.config_text import read_config_text
from ci2p_mm.utils.errors import UserError, listing
from ci2p_mm.utils.io import REMOTE_URI, load_torch_file, unreadable_message
from ci2p_mm.utils.state_dicts import compare_state_dicts, extract_state_dict
from .hooks import non_finite_tensors

#: HistoryBuffer's built-in statistics (its registry fills lazily).
_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name):
    """``getattr`` for unpickling: HistoryBuffer's statistics only."""
    if obj is HistoryBuffer and (name in _STATISTICS
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise torch.serialization.pickle.UnpicklingError(
        f'Refusing getattr({obj!r}, {name!r}) in a checkpoint: only '
        f'HistoryBuffer statistics methods are allowed.')


def allow_mmengine_checkpoints() -> None:
    """Register the types of mmengine's full checkpoints as safe, and make
    mmengine read local checkpoints with :func:`read_checkpoint_file`."""
    types = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy >= 1.25 pickles dtypes by their class (numpy.dtypes.Float64DType)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [
            getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')
        ]
    # Under numpy 1.x, arrays record 'numpy.core.multiarray.*'.
    types += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
              (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    torch.serialization.add_safe_globals(types + [
        HistoryBuffer,
        (history_buffer_getattr, '__builtin__.getattr'),
        (history_buffer_getattr, 'builtins.getattr'),
    ])
    # mmpretrain's get_model(pretrained=), its inferencers and
    # init_cfg=Pretrained read through mmengine's loader of local paths.
    CheckpointLoader.register_scheme('', load_from_local, force=True)


# --------------------------------------------------------------------------
# Reading checkpoints with errors that name the file, and checking that
# they fit the model before anything is loaded.
# --------------------------------------------------------------------------
_FINE_TUNE_HINT = (
    'Evaluate or resume it with the config it was trained with. To start '
    'a new model (e.g. another head) from its backbone, use '
    "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=FILE, "
    "prefix='backbone.') instead of load_from.")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable, unsafe or does not fit."""


def read_checkpoint_file(filename: str, map_location='cpu'):
    """Load a checkpoint with torch's safe loading; name the file on error.

    Local files are read with ``torch.load(weights_only=True)`` (mmengine's
    own checkpoint types are allow-listed above); other URIs go through
    mmengine's ``CheckpointLoader``, whose ``torch.load`` is safe by default
    under torch >= 2.6. Weights holding NaN or inf are refused
    (:func:`refuse_non_finite`).
    """
    filename = str(filename)
    if not REMOTE_URI.match(filename):
        return load_from_local(filename, map_location)
    try:
        checkpoint = _load_checkpoint(filename, map_location=map_location)
    except OSError as err:  # urllib's errors: network, HTTP status, disk
        raise CheckpointError(f'Checkpoint {filename} cannot be downloaded '
                              f'({type(err).__name__}: {err}).') from err
    except Exception as err:
        raise CheckpointError(
            unreadable_message(f'Checkpoint {filename}', err)) from err
    refuse_non_finite(checkpoint, filename)
    return checkpoint


def load_from_local(filename: str, map_location='cpu'):
    """A local checkpoint, read safely and checked by
    :func:`refuse_non_finite`; also mmengine's loader of local paths."""
    checkpoint = load_torch_file(
        filename,
        CheckpointError,
        what=f'Checkpoint {filename}',
        map_location='cpu' if map_location == 'default' else map_location)
    refuse_non_finite(checkpoint, filename)
    return checkpoint


def refuse_non_finite(checkpoint, filename: str) -> None:
    """Refuse weights (``state_dict``, ``ema_state_dict`` or a bare state
    dict) that hold NaN or inf, naming them: they load and score silently."""
    if not isinstance(checkpoint, dict):
        return
    tensors = {
        f'{prefix}{k}': v
        for key, prefix in (('state_dict', ''), ('ema_state_dict', 'ema.'))
        if isinstance(checkpoint.get(key), dict)
        for k, v in checkpoint[key].items()
    } or checkpoint
    names = non_finite_tensors(tensors.items())
    if names:
        bad = sum(
            int(tensors[n].isfinite().logical_not().sum()) for n in names)
        raise CheckpointError(
            f'Checkpoint {filename} holds {bad} NaN/inf values in '
            f'{len(names)} tensor(s): {listing(names, 3)}. These weights are '
            f'broken (a diverged run or a damaged copy); use an earlier '
            f'checkpoint or the original file.')


#: mmengine's default key revision (DDP's ``module.`` prefix).
_MODULE_PREFIX = ((r'^module\.', ''), )


def check_state_dict_fits(module: nn.Module,
                          state_dict: dict,
                          source: str,
                          what: str,
                          checkpoint=None,
                          allow_unused: bool = False) -> List[str]:
    """Raise :class:`CheckpointError` unless ``state_dict`` loads into
    ``module`` exactly: every key present, none extra, every shape equal.

    The module's load-state-dict pre-hooks run first on a copy (mmpretrain
    ViTs resize ``pos_embed`` there), so what they adapt is not a mismatch.
    BatchNorm's ``num_batches_tracked`` may be missing, as in mmengine.
    With ``allow_unused``, keys of the file that the module lacks are not a
    mismatch (a backbone built for feature maps has no pooling norm); they
    are returned. An error names the model ``checkpoint`` (the whole file)
    was saved from (:func:`describe_saved_model`).
    """
    state_dict = dict(state_dict)
    for name, sub in module.named_modules():
        prefix = f'{name}.' if name else ''
        for hook in getattr(sub, '_load_state_dict_pre_hooks', {}).values():
            hook(state_dict, prefix, {}, True, [], [], [])
    mismatch = compare_state_dicts(
        module.state_dict(),
        state_dict,
        may_be_missing=lambda k: k.endswith('num_batches_tracked'))
    unused = mismatch.unexpected if allow_unused else []
    if allow_unused:
        mismatch = mismatch._replace(unexpected=[])
    if not mismatch:
        return unused
    saved_as = describe_saved_model(checkpoint)
    saved = f' The file was saved from {saved_as}.' if saved_as else ''
    raise CheckpointError(f'Checkpoint {source} does not fit {what}: '
                          f'{mismatch.describe()}.{saved} {_FINE_TUNE_HINT}')


def saved_model_config(checkpoint) -> dict:
    """``model`` of the config text a checkpoint records (``meta.cfg``),
    parsed as literals; ``{}`` when there is none or it does not parse."""
    try:
        model = read_config_text(checkpoint['meta']['cfg'])['model']
    except Exception:  # no meta, no text, not a literal config
        return {}
    return model if isinstance(model, dict) else {}


def describe_model_config(model: dict) -> str:
    """``'backbone CI2PViT, arch=b, ..., head num_classes=10'`` from a
    config's ``model``."""
    backbone = model.get('backbone') or {}
    patch, head = backbone.get('patch_cfg') or {}, model.get('head') or {}
    parts = [f'backbone {backbone.get("type")}']
    parts += [
        f'{k}={backbone[k]}' for k in ('arch', 'img_size', 'patch_size')
        if k in backbone
    ]
    parts += [f'{k}={patch[k]}' for k in ('codec', 'quality') if k in patch]
    if 'num_classes' in head:
        parts.append(f'head num_classes={head["num_classes"]}')
    return ', '.join(parts)


def describe_saved_model(checkpoint) -> str:
    """``'a model with backbone CI2PViT, arch=...'`` from the config a
    checkpoint records; ``''`` when it records none."""
    model = saved_model_config(checkpoint)
    try:
        return 'a model with ' + describe_model_config(model) if model else ''
    except Exception:  # parts that are not dicts
        return ''


def checked_class_names(checkpoint, num_classes: Optional[int],
                        source: str) -> Optional[tuple]:
    """The class names a checkpoint records (``meta.dataset_meta``), or
    None; :func:`check_class_names` against a head of ``num_classes``."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    names = meta.get('dataset_meta') if isinstance(meta, dict) else None
    classes = names.get('classes') if isinstance(names, dict) else None
    if classes:
        check_class_names(classes, num_classes,
                          f'Checkpoint {source} (meta.dataset_meta.classes)')
    return tuple(classes) if classes else None


def check_class_names(classes, num_classes: Optional[int],
                      source: str) -> None:
    """Refuse names that are not strings, one per output of a head with
    ``num_classes`` (if known): a demo would name another class."""
    if not isinstance(classes, (list, tuple)) or not all(
            isinstance(c, str) for c in classes):
        raise CheckpointError(f'{source}: the class names are not a list of '
                              f'strings ({type(classes).__name__}).')
    if num_classes is not None and len(classes) != num_classes:
        raise CheckpointError(
            f'{source} names {len(classes)} classes '
            f'({listing(map(repr, classes), 3)}), but the head has '
            f'{num_classes} outputs: the names are not this model\'s. Give '
            f'the names it was trained with: publish_model.py FILE OUT '
            f'--dataset-type TYPE --replace-classes.')


def head_num_classes(model) -> Optional[int]:
    """``num_classes`` of the head of a model or of a config's ``model``."""
    head = model.get('head') if isinstance(model, dict) else getattr(
        model, 'head', None)
    found = head.get('num_classes') if isinstance(head, dict) else getattr(
        head, 'num_classes', None)
    return found if isinstance(found, int) else None


def load_checked_checkpoint(model: nn.Module,
                            checkpoint,
                            filename: str,
                            what: str,
                            strict: bool = False,
                            revise_keys=_MODULE_PREFIX,
                            allow_unused: bool = False) -> dict:
    """Load a checkpoint read by :func:`read_checkpoint_file` into
    ``model`` once it fits: it holds a state dict, its CI2P codec is the
    model's (:func:`check_codecs`) and its weights load exactly
    (:func:`check_state_dict_fits`; ``what`` names the model in errors).

    The one checked load: ``CI2PRunner.load_checkpoint`` (tools/train.py,
    tools/test.py), ``init_cfg=Pretrained`` (:class:`CheckedPretrainedInit`),
    the ONNX exporter and ``demo/image_demo.py`` use it. Returns the
    checkpoint, as mmengine's ``_load_checkpoint_to_model`` does.
    """
    state_dict = extract_state_dict(checkpoint, filename, revise_keys,
                                    CheckpointError)
    check_codecs(model, checkpoint, filename)
    check_state_dict_fits(model, state_dict, filename, what, checkpoint,
                          allow_unused)
    return _load_checkpoint_to_model(
        model, checkpoint, strict, revise_keys=list(revise_keys))


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class CheckedPretrainedInit(PretrainedInit):
    """mmengine's ``init_cfg=dict(type='Pretrained')`` in mmpretrain's scope
    (the CI2P configs'): the file is read once, by
    :func:`read_checkpoint_file`, and loaded by
    :func:`load_checked_checkpoint`, since mmengine loads it with
    ``strict=False``, warning only."""

    def __call__(self, module: nn.Module) -> None:
        filename, prefix = self.checkpoint, self.prefix
        where = (f'{type(module).__name__} (init_cfg=Pretrained'
                 f'{f", prefix={prefix!r}" if prefix else ""})')
        print_log(  # mmengine's log lines
            f'load {f"{prefix} in " if prefix else ""}model from: {filename}',
            logger='current')
        checkpoint = read_checkpoint_file(filename, self.map_location)
        revise_keys = _MODULE_PREFIX
        if prefix:  # mmengine's _load_checkpoint_with_prefix
            state_dict = extract_state_dict(checkpoint, filename, (),
                                            CheckpointError)
            prefix = prefix if prefix.endswith('.') else prefix + '.'
            heads = sorted({k.split('.')[0] + '.' for k in state_dict})
            # An OrderedDict: mmengine's loader sets its _metadata.
            checkpoint = dict(
                checkpoint,
                state_dict=OrderedDict((k[len(prefix):], v)
                                       for k, v in state_dict.items()
                                       if k.startswith(prefix)))
            if not checkpoint['state_dict']:
                raise CheckpointError(
                    f'Checkpoint {filename} has no weights under prefix '
                    f'{prefix!r} for {where}; its keys start with '
                    f'{heads[:6]}.')
            revise_keys = ()
        load_checked_checkpoint(
            module, checkpoint, filename, where, revise_keys=revise_keys)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())


# ---- the codec a CI2P checkpoint was trained with ----------------------


def model_codecs(module: nn.Module) -> Dict[str, Tuple[str, int]]:
    """``{module path: (codec, quality)}`` of the CI2P encoders in it."""
    return {
        name: (m.codec, int(m.quality))
        for name, m in module.named_modules() if isinstance(m, CI2PEncoder)
    }


def checkpoint_codecs(checkpoint) -> Optional[Set[Tuple[str, int]]]:
    """The codecs a checkpoint records (written by ``CI2PRunner``), or read
    from the config it saved; None when it says nothing."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    recorded = meta.get('ci2p_codecs') if isinstance(meta, dict) else None
    if isinstance(recorded, dict) and recorded:
        return {(canonical_codec_name(c), int(q))
                for c, q in recorded.values()}
    try:
        backbone = saved_model_config(checkpoint).get('backbone')
        if not is_ci2p_backbone(backbone):
            return None
        patch = backbone.get('patch_cfg') or {}
        return {
            (canonical_codec_name(patch.get('codec', 'bmshj2018-factorized')),
             int(patch.get('quality', 5)))
        }
    except Exception:
        return None


def check_codecs(module: nn.Module, checkpoint, source: str) -> None:
    """A CI2P checkpoint's codec and quality must be the model's.

    Codecs of one family share ``g_a``'s shapes across qualities (and the
    factorized and hyperprior models share them too), so shapes alone
    cannot tell; the checkpoint's record can.
    """
    built = set(model_codecs(module).values())
    saved = checkpoint_codecs(checkpoint) if built else None
    if not saved or saved == built:
        return

    def fmt(codecs):
        return ' and '.join(f'{c!r} quality {q}' for c, q in sorted(codecs))

    (codec, quality), = sorted(saved)[:1]
    raise CheckpointError(
        f'Checkpoint {source} was trained with codec {fmt(saved)}, but the '
        f'model is built with {fmt(built)}. The encoders have the same '
        f'shapes but not the same weights or latent meaning. Use the config '
        f'it was trained with (e.g. --cfg-options '
        f'model.backbone.patch_cfg.codec={codec} '
        f'model.backbone.patch_cfg.quality={quality}) or a checkpoint '
        f'trained with this codec.')
