"""The model part of a config, ready to build, for the analysis tools."""
from typing import Optional

from mmengine.config import Config

from .known_warnings import known_warnings_silenced

#: Backbones whose ``patch_cfg`` configures a CompressAI codec.
CI2P_BACKBONES = ('CI2PViT', 'DualScaleViT')


def load_model_config(path: str,
                      cfg_options: Optional[dict] = None,
                      no_pretrained: bool = False,
                      channels_last: bool = False) -> Config:
    """Read ``path`` and prepare ``cfg.model`` for ``MODELS.build``.

    The top-level ``data_preprocessor`` moves into the model (as mmengine's
    Runner does). For CI2P backbones, ``no_pretrained`` builds the codec
    without downloading weights (FLOPs and speed do not depend on them) and
    ``channels_last`` sets ``patch_cfg.channels_last``.
    """
    with known_warnings_silenced():  # mmengine reads mmpretrain:: bases
        cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model_cfg = cfg.model
    if 'data_preprocessor' in cfg:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    backbone = model_cfg.get('backbone', {})
    if backbone.get('type') in CI2P_BACKBONES:
        backbone.setdefault('patch_cfg', {})
        if no_pretrained:
            backbone.patch_cfg.pretrained = False
        if channels_last:
            backbone.patch_cfg.channels_last = True
    return cfg
