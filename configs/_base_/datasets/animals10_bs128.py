# Animals-10 at 256x256, random horizontal flip only (the paper's recipe).
# Prepare with tools/dataset_converters/prepare_animals10.py; check the files
# with tools/misc/verify_dataset.py CONFIG. SafeLoadImageFromFile (BGR out,
# like mmcv's LoadImageFromFile) reads regular files only, decodes photo
# formats only, grey, palette, RGBA, CMYK, 16-bit and EXIF-rotated files as a
# viewer shows them, and refuses empty, truncated and non-image files
# (ci2p_mm/utils/image_files.py).
dataset_type = 'Animals10'
data_root = 'data/animals10'

train_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(256, 256)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(256, 256)),
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
