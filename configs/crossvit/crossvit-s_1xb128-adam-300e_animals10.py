# CrossViT-S on Animals-10 at 240x240: its natural size nearest to 256
# (patches of 12 and 16 both tile 240; the large-patch branch sees the
# image resized to 224 inside the model, as in the paper), class-token
# head on both branches.
# The CI2P paper's recipe (as configs/ci2p_vit_animals10.py): from scratch,
# Adam lr 1e-4, random horizontal flip only, 300 epochs, batch 128.
_base_ = [
    '../_base_/datasets/animals10_bs128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CrossViT', arch='s', img_size=240),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=192 + 384,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# mean/std-normalised RGB (the hybrids are not codec-fed), as the ViT-B/16
# baseline (configs/_base_/models/vit_b16.py).
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=10,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(240, 240)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(240, 240)),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
