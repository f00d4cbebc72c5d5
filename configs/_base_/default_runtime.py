# mmpretrain's runtime, plus the CI2P plugin and settings for long runs.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['ci2p_mm'], allow_failed_imports=False)

# CI2PRunner (ci2p_mm/engine/runner.py): checkpoints are checked against the
# model before loading (tools/test.py, load_from, --resume and
# init_cfg=Pretrained fail naming the file and what does not match), saved
# atomically, and resumed exactly, also in the middle of an epoch.
runner_type = 'CI2PRunner'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # Keep the best and the last three epochs; `last_checkpoint` always
    # points to a complete file for --resume. SafeCheckpointHook writes
    # atomically and also saves iter_N.pth every `iter_interval` iterations
    # inside an epoch (only the newest is kept), so a kill loses little.
    checkpoint=dict(
        type='SafeCheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='auto',
        iter_interval=1000),
)

custom_hooks = [
    # Stop with the iteration and the value when a loss is NaN or inf.
    dict(type='NonFiniteLossHook'),
    # Count (per epoch, in the log) images skipped by datasets with
    # skip_bad_images=True.
    dict(type='SkippedImagesHook'),
]

# Exact resume: a run killed (even with SIGKILL, even mid-epoch) and
# continued with `tools/train.py CONFIG --resume` ends with the same weights
# as an uninterrupted run when
#   - the seed is fixed (here) and, on GPUs, deterministic=True;
#   - the train sampler is ResumableSampler (configs/_base_/datasets/*),
#     which seeds each sample's augmentation, so any num_workers works;
#   - the number of processes and the batch size are unchanged.
# Set deterministic=True for bit-exact GPU runs (slower cuDNN kernels).
randomness = dict(seed=0, deterministic=False)

# mmpretrain's visualizer, restated here: settings inherited through
# `mmpretrain::` carry a `_scope_` key, which mmpretrain's
# tools/visualization/browse_dataset.py passes on to the visualizer's
# constructor (TypeError). Defined in this file, it has none.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    _delete_=True, type='UniversalVisualizer', vis_backends=vis_backends)
