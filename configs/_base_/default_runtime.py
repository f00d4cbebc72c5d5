# mmpretrain's runtime, plus the CI2P plugin and settings for long runs.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['ci2p_mm'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # Keep the best and the last three epochs; `latest` is always there for
    # --resume.
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'),
)

randomness = dict(seed=0, deterministic=False)
