"""Publishing a training checkpoint (mmpretrain's ``publish_model.py``).

What stays: the weights (or the EMA weights), and what CI2P needs to check
the file against a model before loading it: the codec and quality
(``meta.ci2p_codecs``), the config the model was trained with
(``meta.cfg``: architecture, input size) and the class names
(``meta.dataset_meta``). What goes: optimizer and scheduler states, the
message hub, hook messages and random generator states. The file is named
``{stem}_{YYYYMMDD}-{sha256[:8]}.pth`` as OpenMMLab's model zoo names its
files, and loads with ``torch.load(weights_only=True)``, torch's default
since 2.6.
"""
import datetime
import os.path as osp
from typing import Optional

from ci2p_mm.utils.io import (file_sha256, load_torch_file, replace_atomically,
                              save_atomic)
from .checkpoint import CheckpointError, read_checkpoint_file

#: Training state that a published model does not need.
DROPPED = ('optimizer', 'param_schedulers', 'hook_msgs', 'message_hub')
#: Meta entries that only a resumed run needs.
DROPPED_META = ('ci2p_rng', )


def publish_checkpoint(in_file: str,
                       out_file: str,
                       no_ema: bool = False,
                       dataset_type: Optional[str] = None) -> str:
    """Write the published file next to ``out_file``; return its path."""
    import mmpretrain
    checkpoint = read_checkpoint_file(in_file)
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise CheckpointError(
            f'{in_file} is not an mmengine checkpoint (no "state_dict").')
    if no_ema:
        if 'ema_state_dict' not in checkpoint:
            raise CheckpointError(f'{in_file} has no "ema_state_dict" for '
                                  f'--no-ema.')
        checkpoint['state_dict'] = checkpoint.pop('ema_state_dict')
    published = {k: v for k, v in checkpoint.items()
                 if k not in DROPPED and k != 'ema_state_dict'}
    meta = {k: v for k, v in (checkpoint.get('meta') or {}).items()
            if k not in DROPPED_META}
    meta.setdefault('mmpretrain_version', mmpretrain.__version__)
    if dataset_type is not None:
        from mmpretrain.registry import DATASETS
        meta['dataset_meta'] = dict(
            getattr(DATASETS.get(dataset_type), 'METAINFO', {}))
    if not meta.get('dataset_meta'):
        raise CheckpointError(
            f'{in_file} records no class names (meta.dataset_meta); pass '
            f'--dataset-type (e.g. Animals10) so inference can name classes.')
    published['meta'] = meta

    stem = osp.splitext(out_file)[0]
    tmp = f'{stem}.unhashed.pth'
    save_atomic(published, tmp)
    digest = file_sha256(tmp)[:8]
    date = datetime.date.today().strftime('%Y%m%d')
    final = f'{stem}_{date}-{digest}.pth'
    replace_atomically(tmp, final)
    # What users will do with it, under torch's safe default.
    load_torch_file(final, CheckpointError, what=f'Published file {final}')
    return final
