"""Publishing a training checkpoint (mmpretrain's ``publish_model.py``).

    python tools/model_converters/publish_model.py \
        work_dirs/ci2p_vit_animals10/epoch_300.pth ci2p-vit-b_animals10.pth

What stays: the weights (or the EMA weights), and what CI2P needs to check
the file against a model before loading it: the codec and quality
(``meta.ci2p_codecs``), the config the model was trained with
(``meta.cfg``: architecture, input size) and the class names
(``meta.dataset_meta``). What goes: optimizer and scheduler states, the
message hub, hook messages and random generator states. The file is named
``{stem}_{YYYYMMDD}-{sha256[:8]}.pth`` as OpenMMLab's model zoo names its
files, and loads with ``torch.load(weights_only=True)``, torch's default
since 2.6.

The config text is rewritten as data. Stock mmengine executes the config
text it finds in a checkpoint (``BaseInferencer(model=None, weights=...)``
reads ``meta.cfg``, ``Runner.resume`` reads ``meta.config``), and a file
passed on is read by such code: ``meta.cfg`` becomes ``name = literal``
lines only (:func:`~ci2p_mm.utils.config_text.data_only_config_text`;
statements that are code are dropped and listed), ``meta.config`` keeps
only ``gpu_ids`` as a literal, and the message hub (whose ``runtime_info``
also holds the config text, read first by ``BaseInferencer``) is dropped
with the rest of the training state.
"""
import argparse
import datetime
import hashlib
import os.path as osp
from typing import Callable, Optional

import mmpretrain
from mmpretrain.registry import DATASETS

from ci2p_mm.utils.config_text import ConfigTextError, data_only_config_text
from ci2p_mm.utils.errors import listing
from ci2p_mm.utils.io import (check_output_path, load_torch_file,
                              printable_path, torch_bytes,
                              write_bytes_atomically)
from .checkpoint import (CheckpointError, check_class_names,
                         checked_class_names, head_num_classes,
                         read_checkpoint_file, saved_model_config)
from .runner import defuse_legacy_config

#: Training state that a published model does not need (and the EMA
#: weights, unless ``--no-ema`` publishes them as the weights).
DROPPED = ('optimizer', 'param_schedulers', 'hook_msgs', 'message_hub',
           'ema_state_dict')
#: Meta entries that only a resumed run needs.
DROPPED_META = ('ci2p_rng', )


def publish_config_as_data(meta: dict,
                           in_file: str,
                           report: Callable[[str], None] = print) -> None:
    """Rewrite ``meta['cfg']`` and ``meta['config']`` in place as text
    that executes nothing but literals (see this module's docstring);
    ``report`` gets one line per statement dropped."""
    if 'cfg' in meta:
        text = meta['cfg']
        if not isinstance(text, str):
            del meta['cfg']
            report(f'{in_file}: meta.cfg is a {type(text).__name__}, not '
                   f'config text; left out.')
        else:
            try:
                meta['cfg'], notes = data_only_config_text(text)
            except ConfigTextError as err:
                raise CheckpointError(
                    f'{in_file}: its config text (meta.cfg) cannot be '
                    f'published as data: {err}. mmengine\'s readers would '
                    f'execute it. Publish a checkpoint trained from a plain '
                    f'config (no lazy imports), or publish without the '
                    f'config (--no-config; inference then needs the config '
                    f'file).') from None
            for note in notes:
                report(f'{in_file}: meta.cfg {note}.')
    if 'config' in meta:
        defuse_legacy_config(meta)
        report(f'{in_file}: meta.config (an old mmengine record) reduced to '
               f'{meta.get("config", "nothing").strip() or "nothing"}.')


def publish_checkpoint(in_file: str,
                       out_file: str,
                       no_ema: bool = False,
                       dataset_type: Optional[str] = None,
                       no_config: bool = False,
                       report: Callable[[str], None] = print,
                       replace_classes: bool = False) -> str:
    """Write the published file next to ``out_file``; return its path.

    ``dataset_type`` names the classes of a checkpoint that records none;
    ``replace_classes`` lets it replace names the checkpoint has. Either
    way there must be one name per output of the head. ``no_config=True``
    leaves the config text out altogether; ``report`` prints what was
    dropped from it."""
    check_output_path(out_file, in_file, what='OUT_FILE')
    checkpoint = read_checkpoint_file(in_file)
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise CheckpointError(
            f'{in_file} is not an mmengine checkpoint (no "state_dict").')
    if no_ema:
        if 'ema_state_dict' not in checkpoint:
            raise CheckpointError(f'{in_file} has no "ema_state_dict" for '
                                  f'--no-ema.')
        checkpoint['state_dict'] = checkpoint.pop('ema_state_dict')
    published = {k: v for k, v in checkpoint.items() if k not in DROPPED}
    meta = {
        k: v
        for k, v in (checkpoint.get('meta') or {}).items()
        if k not in DROPPED_META
    }
    meta.setdefault('mmpretrain_version', mmpretrain.__version__)
    name_classes(meta, in_file, dataset_type, replace_classes,
                 head_num_classes(saved_model_config(checkpoint)))
    if no_config:
        meta.pop('cfg', None)
        meta.pop('config', None)
    else:
        publish_config_as_data(meta, in_file, report)
    published['meta'] = meta

    data = torch_bytes(published)
    digest = hashlib.sha256(data).hexdigest()[:8]
    date = datetime.date.today().strftime('%Y%m%d')
    final = f'{osp.splitext(out_file)[0]}_{date}-{digest}.pth'
    write_bytes_atomically(final, data)
    # What users will do with it, under torch's safe default.
    load_torch_file(final, CheckpointError, what=f'Published file {final}')
    return final


def name_classes(meta: dict, in_file: str, dataset_type: Optional[str],
                 replace: bool, num_classes: Optional[int]) -> tuple:
    """The class names to publish, one per output of a head with
    ``num_classes`` (if known; checked once, :func:`check_class_names`): the
    checkpoint's own, or (then set in ``meta``) those of the registered
    ``dataset_type`` when it has none or ``replace`` says so."""
    own = checked_class_names({'meta': meta},
                              None if dataset_type else num_classes, in_file)
    if dataset_type:
        metainfo = dict(getattr(DATASETS.get(dataset_type), 'METAINFO', {}))
        if not metainfo.get('classes'):
            raise CheckpointError(
                f'--dataset-type {dataset_type}: no dataset of that name with '
                f'class names in mmpretrain\'s registry (e.g. Animals10, '
                f'ImageNet).')
        if own and list(own) != list(metainfo['classes']) and not replace:
            raise CheckpointError(
                f'{in_file} names its own {len(own)} classes '
                f'({listing(map(repr, own), 3)}); --dataset-type '
                f'{dataset_type} fills names only when there are none. Leave '
                f'it out, or add --replace-classes to replace them.')
        if not own or replace:
            meta['dataset_meta'] = metainfo
        own = tuple(metainfo['classes'])  # the checkpoint's, if it kept them
        check_class_names(own, num_classes, f'--dataset-type {dataset_type}')
    if not own:
        raise CheckpointError(
            f'{in_file} records no class names (meta.dataset_meta); pass '
            f'--dataset-type (e.g. Animals10) so inference can name classes.')
    return own


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Process a checkpoint to be published')
    add = parser.add_argument
    add('in_file', help='input checkpoint filename')
    add('out_file', help='output checkpoint filename')
    add('--no-ema',
        action='store_true',
        help='publish the EMA weights (ema_state_dict)')
    add('--dataset-type',
        help='dataset whose class names to record when the checkpoint has '
        'none, e.g. Animals10')
    add('--replace-classes',
        action='store_true',
        help="with --dataset-type: replace the checkpoint's own class names")
    add('--no-config',
        action='store_true',
        help='leave the config text (meta.cfg, meta.config) out of the '
        'published file')
    args = parser.parse_args(argv)
    if args.replace_classes and not args.dataset_type:
        parser.error('--replace-classes needs --dataset-type')
    return args


def main(argv=None) -> int:
    """``tools/model_converters/publish_model.py``."""
    final = publish_checkpoint(**vars(parse_args(argv)))
    print(f'Published {printable_path(final)}')
    return 0
