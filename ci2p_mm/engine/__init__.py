from .launcher import configure_launcher, set_default_dataloader_cfg

__all__ = ['configure_launcher', 'set_default_dataloader_cfg']
from .checkpoint import allow_mmengine_checkpoints, history_buffer_getattr

__all__ += ['allow_mmengine_checkpoints', 'history_buffer_getattr']

allow_mmengine_checkpoints()
