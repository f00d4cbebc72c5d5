# Codec training (tools/train_codec.py, docs/codec.md) on the project's
# runner: CI2PRunner's atomic checkpoints, exact resume (also after SIGKILL),
# SIGTERM stop, work-dir lock, and NonFiniteLossHook. The whole run is one
# pass over a stream of random crops (CodecImageFolder's `num_samples`),
# which ResumableSampler resumes inside; CodecTrainingHook validates every
# `val_interval` iterations, and SafeCheckpointHook saves iter_N.pth then.
# tools/train_codec.py fills in the folder, the crop size, the length and
# the lr schedule from its options and the preset's `codec_recipe`
# (configs/codec/).
_base_ = ['./default_runtime.py']

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.codec.training'], allow_failed_imports=False)

model = dict(
    type='RateDistortionCodec',
    codec='bmshj2018-factorized',
    quality=5,
    metric='mse',
    lmbda=0.025,
    pretrained=False)

# The user's own folder: links in it are followed; tiny images are fine
# (reflection-padded to the crop).
_load = dict(
    type='SafeLoadImageFromFile', min_size=1, allow_symlinks_out_of_root=True)
_loader = dict(batch_size=16, num_workers=4, persistent_workers=True)
_images = dict(type='CodecImageFolder', image_dir='data/my_images')
train_dataloader = dict(
    **_loader,
    sampler=dict(type='ResumableSampler', shuffle=True),
    dataset=dict(
        **_images,
        split='train',
        pipeline=[
            _load,
            dict(
                type='RandomCrop',
                crop_size=256,
                pad_if_needed=True,
                padding_mode='reflect'),
            dict(type='PackInputs')
        ]))
val_dataloader = dict(
    **_loader,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **_images,
        split='val',
        pipeline=[
            _load,
            dict(
                type='CenterCrop',
                crop_size=256,
                auto_pad=True,
                pad_cfg=dict(type='Pad', padding_mode='reflect')),
            dict(type='PackInputs')
        ]))
val_evaluator = dict(type='RateDistortionMetric')
val_cfg = dict()

# compressai.optimizers.net_aux_optimizer's split: Adam on the network
# (gradients clipped), a second Adam on the entropy bottleneck's quantiles.
optim_wrapper = dict(
    constructor='NetAuxOptimWrapperConstructor',
    net=dict(
        type='OptimWrapper',
        optimizer=dict(type='Adam', lr=1e-4),
        clip_grad=dict(max_norm=1.0)),
    aux=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3)))
param_scheduler = dict(net=[], aux=[])

# One epoch; validation by CodecTrainingHook (val_begin: never the loop's).
train_cfg = dict(by_epoch=True, max_epochs=1, val_begin=2)
default_hooks = dict(
    logger=dict(interval=10, log_metric_by_epoch=False),
    checkpoint=dict(save_best=None, max_keep_ckpts=1, iter_interval=1000))
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='CodecTrainingHook', val_interval=1000)
]
# Training logs: means over the window (`--log-interval`) but for the lr;
# validation (codec/...): that validation's values.
log_processor = dict(
    by_epoch=False, window_size=10, mean_pattern=r'^(?!codec/)(?!.*lr$)')
