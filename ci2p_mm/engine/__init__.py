from .checkpoint import (CheckpointError, allow_mmengine_checkpoints,
                         history_buffer_getattr, load_checked_checkpoint,
                         read_checkpoint_file)
from .hooks import (AtomicLocalBackend, NonFiniteLossHook, SafeCheckpointHook,
                    SkippedImagesHook)
from .launcher import (CPUAmpOptimWrapper, build_runner, close_distributed,
                       configure_amp, configure_launcher, configure_tta,
                       merge_runner_args, parse_runner_args,
                       set_default_dataloader_cfg)
from .runner import (CheckpointSaveError, CI2PRunner,
                     ResumableEpochBasedTrainLoop, WorkDirBusyError,
                     work_dir_lock)
from .stop_signals import StopSignals

allow_mmengine_checkpoints()

__all__ = [
    'configure_launcher', 'close_distributed', 'configure_tta',
    'configure_amp', 'CPUAmpOptimWrapper', 'set_default_dataloader_cfg',
    'parse_runner_args', 'merge_runner_args', 'build_runner',
    'allow_mmengine_checkpoints', 'history_buffer_getattr', 'CheckpointError',
    'read_checkpoint_file', 'load_checked_checkpoint', 'CI2PRunner',
    'ResumableEpochBasedTrainLoop', 'NonFiniteLossHook', 'SafeCheckpointHook',
    'SkippedImagesHook', 'AtomicLocalBackend', 'CheckpointSaveError',
    'StopSignals', 'WorkDirBusyError', 'work_dir_lock'
]
