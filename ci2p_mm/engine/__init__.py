from .checkpoint import (CheckpointError, allow_mmengine_checkpoints,
                         history_buffer_getattr, load_checked_checkpoint,
                         read_checkpoint_file)
from .compile import compile_cfg_kwargs, compile_forward
from .hooks import NonFiniteLossHook, SafeCheckpointHook, SkippedImagesHook
from .launcher import (add_runner_arguments, close_distributed,
                       configure_launcher, configure_tta,
                       set_default_dataloader_cfg, set_local_rank,
                       set_work_dir)
from .runner import (CheckpointSaveError, CI2PRunner,
                     ResumableEpochBasedTrainLoop)
from .stop_signals import StopSignals
from .work_dir_lock import WorkDirBusyError, WorkDirLock

allow_mmengine_checkpoints()

__all__ = [
    'configure_launcher', 'close_distributed', 'configure_tta',
    'set_default_dataloader_cfg', 'add_runner_arguments', 'set_local_rank',
    'set_work_dir', 'allow_mmengine_checkpoints', 'history_buffer_getattr',
    'CheckpointError', 'read_checkpoint_file', 'load_checked_checkpoint',
    'CI2PRunner', 'ResumableEpochBasedTrainLoop', 'NonFiniteLossHook',
    'SafeCheckpointHook', 'SkippedImagesHook', 'CheckpointSaveError',
    'StopSignals', 'WorkDirBusyError', 'WorkDirLock', 'compile_cfg_kwargs',
    'compile_forward'
]
