"""The model part of a config, ready to build, for tools and analysis.

Tools change a CI2P backbone's codec settings (random weights for timing,
a local codec file, latent input) through :func:`set_patch_options`, the
one place that knows where those settings live in a config.
"""
import ast
import copy
import logging
import os.path as osp
from typing import Optional, Union

from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper

from .config_text import read_config_text
from .errors import ConfigError
from .known_warnings import known_warnings_silenced

#: Backbones whose ``patch_cfg`` configures a CompressAI codec.
CI2P_BACKBONES = ('CI2PViT', 'DualScaleViT')


def is_ci2p_backbone(backbone_cfg: Optional[dict]) -> bool:
    """Whether a backbone config is one of :data:`CI2P_BACKBONES`."""
    kind = str((backbone_cfg or {}).get('type', ''))
    return kind.split('.')[-1] in CI2P_BACKBONES


def set_patch_options(cfg: Union[Config, ConfigDict], **options) -> bool:
    """Set ``model.backbone.patch_cfg`` entries of a CI2P config in place
    (e.g. ``pretrained=False``, ``latent_input=True``); return whether the
    backbone is a CI2P one (other configs are left as they are)."""
    backbone = cfg.model.get('backbone', None)
    if not is_ci2p_backbone(backbone):
        return False
    backbone.setdefault('patch_cfg', ConfigDict()).update(options)
    return True


def read_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile`` with the known framework warnings silenced and
    ``--cfg-options`` merged.

    A file that is missing, not UTF-8 or not valid Python (its own or a
    ``_base_`` file) is a :class:`~ci2p_mm.utils.errors.ConfigError`
    naming the file and line; mmengine reports a syntax error as ``File
    "<unknown>"``.
    """
    problems = (OSError, UnicodeDecodeError, SyntaxError)
    try:
        with known_warnings_silenced():  # mmengine reads mmpretrain:: bases
            cfg = Config.fromfile(path)
    except problems as err:
        try:  # the file and line that mmengine's error lost
            _parse_with_bases(path)
        except problems as precise:
            err = precise
        raise ConfigError(f'Config {path}: {_config_problem(path, err)}.')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _parse_with_bases(path: str) -> None:
    """Parse a config and the local files its ``_base_`` names, raising
    the first ``SyntaxError`` with its file name."""
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8')
    ast.parse(text, path)
    bases = read_config_text(text).get('_base_', [])
    if not isinstance(bases, (list, tuple)):  # a name, or not a literal
        bases = [bases] if isinstance(bases, str) else []
    for base in bases:
        local = osp.join(osp.dirname(path), str(base))
        if '::' not in str(base) and osp.isfile(local):
            _parse_with_bases(local)


def _config_problem(path: str, err: Exception) -> str:
    if isinstance(err, UnicodeDecodeError):
        return f'not UTF-8 text (byte {err.start})'
    if isinstance(err, SyntaxError):
        where = '' if err.filename == path else f'{err.filename}, '
        return (f'{where}line {err.lineno}: {err.msg}'
                f'{f" ({err.text.strip()})" if err.text else ""}')
    name = err.filename or path
    what = 'it' if name == path else f'its _base_ file {name}'
    if isinstance(err, FileNotFoundError):
        return f'{what} does not exist'
    return f'{what} cannot be read ({err.strerror or err})'


def load_model_config(config: Union[str, Config],
                      cfg_options: Optional[dict] = None,
                      no_pretrained: bool = False,
                      channels_last: bool = False) -> Config:
    """Read a config (a path, or a Config, which is copied) and prepare
    ``cfg.model`` for ``MODELS.build``.

    The top-level ``data_preprocessor`` moves into the model (as mmengine's
    Runner does). For CI2P backbones, ``no_pretrained`` builds the codec
    without downloading weights (FLOPs and speed do not depend on them) and
    ``channels_last`` sets ``patch_cfg.channels_last``.
    """
    cfg = (
        copy.deepcopy(config)
        if isinstance(config, Config) else read_config(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'data_preprocessor' in cfg:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if no_pretrained:
        set_patch_options(cfg, pretrained=False)
    if channels_last:
        set_patch_options(cfg, channels_last=True)
    return cfg


def quiet_init_weights(model) -> None:
    """``model.init_weights()`` without mmengine's per-parameter INFO log
    (it prints every parameter's initialisation)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def bare_model(model):
    """``model`` out of mmengine's wrapper (DDP, FSDP), if it is in one."""
    return model.module if is_model_wrapper(model) else model
