_test = [
    dict(type='SafeLoadImageFromFile'),
    dict(scale=(
        64,
        64,
    ), type='Resize'),
    dict(type='PackInputs'),
]
_train = [
    dict(type='SafeLoadImageFromFile'),
    dict(scale=(
        64,
        64,
    ), type='Resize'),
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(type='PackInputs'),
]
auto_scale_lr = dict(base_batch_size=128)
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='SkippedImagesHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'ci2p_mm',
    ])
data_preprocessor = dict(num_classes=10, type='CI2PDataPreprocessor')
data_root = 'data/animals10'
dataset_type = 'Animals10'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmpretrain',
        interval=1,
        iter_interval=1000,
        max_keep_ckpts=3,
        save_best='auto',
        type='SafeCheckpointHook'),
    logger=dict(_scope_='mmpretrain', interval=1, type='LoggerHook'),
    param_scheduler=dict(_scope_='mmpretrain', type='ParamSchedulerHook'),
    sampler_seed=dict(_scope_='mmpretrain', type='DistSamplerSeedHook'),
    timer=dict(_scope_='mmpretrain', type='IterTimerHook'),
    visualization=dict(
        _scope_='mmpretrain', enable=False, type='VisualizationHook'))
default_scope = 'mmpretrain'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
launcher = 'none'
load_from = '/tmp/pytest-of-root/pytest-31/test_test_tool_out_that_is_a_f0/model.pkl'
log_level = 'INFO'
model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=64, feedforward_channels=128, num_heads=2,
            num_layers=2),
        drop_path_rate=0.1,
        img_size=64,
        out_type='avg_featmap',
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            frozen=True,
            pretrained=False,
            quality=5),
        type='CI2PViT',
        with_cls_token=False),
    head=dict(
        in_channels=64,
        loss=dict(loss_weight=1.0, type='CrossEntropyLoss'),
        num_classes=10,
        topk=(
            1,
            5,
        ),
        type='LinearClsHead'),
    neck=None,
    type='ImageClassifier')
optim_wrapper = dict(
    optimizer=dict(
        betas=(
            0.9,
            0.999,
        ), lr=0.0001, type='Adam', weight_decay=0))
param_scheduler = []
randomness = dict(deterministic=True, seed=0)
resume = False
runner_type = 'CI2PRunner'
test_cfg = dict()
test_dataloader = dict(
    batch_size=10,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        data_root='/tmp/pytest-of-root/pytest-31/refusals0/data',
        pipeline=[
            dict(type='SafeLoadImageFromFile'),
            dict(scale=(
                64,
                64,
            ), type='Resize'),
            dict(type='PackInputs'),
        ],
        skip_bad_images=False,
        split='val',
        type='Animals10'),
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = dict(
    topk=(
        1,
        5,
    ), type='Accuracy')
test_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(scale=(
        256,
        256,
    ), type='Resize'),
    dict(type='PackInputs'),
]
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
train_dataloader = dict(
    batch_size=5,
    dataset=dict(
        data_root='/tmp/pytest-of-root/pytest-31/refusals0/data',
        pipeline=[
            dict(type='SafeLoadImageFromFile'),
            dict(scale=(
                64,
                64,
            ), type='Resize'),
            dict(direction='horizontal', prob=0.5, type='RandomFlip'),
            dict(type='PackInputs'),
        ],
        skip_bad_images=False,
        split='train',
        type='Animals10'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=True, type='ResumableSampler'))
train_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(scale=(
        256,
        256,
    ), type='Resize'),
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(type='PackInputs'),
]
val_cfg = dict()
val_dataloader = dict(
    batch_size=10,
    dataset=dict(
        data_root='/tmp/pytest-of-root/pytest-31/refusals0/data',
        pipeline=[
            dict(type='SafeLoadImageFromFile'),
            dict(scale=(
                64,
                64,
            ), type='Resize'),
            dict(type='PackInputs'),
        ],
        skip_bad_images=False,
        split='val',
        type='Animals10'),
    num_workers=0,
    sampler=dict(shuffle=False, type='DefaultSampler'))
val_evaluator = dict(
    topk=(
        1,
        5,
    ), type='Accuracy')
vis_backends = [
    dict(type='LocalVisBackend'),
]
visualizer = dict(
    type='UniversalVisualizer', vis_backends=[
        dict(type='LocalVisBackend'),
    ])
work_dir = './work_dirs/tiny'
