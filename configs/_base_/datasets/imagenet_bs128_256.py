# ImageNet-1k at 256x256: shorter side to 256, centre crop, random flip only.
# mmpretrain's ImageNet with skip_bad_images and seeded augmentation.
dataset_type = 'RobustImageNet'
data_root = 'data/imagenet'

train_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        # True: skip unreadable files (counted in the log) instead of
        # stopping; see ci2p_mm/datasets/robust.py.
        skip_bad_images=False,
        pipeline=train_pipeline),
    # DefaultSampler's order, resumable mid-epoch, per-sample seeded
    # augmentation (exact resume with any num_workers).
    sampler=dict(type='ResumableSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        skip_bad_images=False,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
