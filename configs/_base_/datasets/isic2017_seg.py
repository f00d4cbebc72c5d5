# ISIC 2017 Task 1 (skin lesion segmentation) as a binary mmseg data set:
# background (0) / lesion (1). Prepare the folders with
#   python tools/dataset_converters/isic2017.py data/ISIC2017 data/isic2017_seg
# (see docs/segmentation.md): img_dir/{train,val,test}/*.jpg and
# ann_dir/{train,val,test}/*.png holding 0/1 label maps, mmseg's layout.
# Used by the mmseg configs in configs/downstream/ (default_scope 'mmseg').
dataset_type = 'BaseSegDataset'
data_root = 'data/isic2017_seg'
metainfo = dict(
    classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 255, 255]])
crop_size = (224, 224)  # the paper's input size (H, W)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
# Predict at crop_size; mmseg resizes the logits back to the image and
# scores them against the full-resolution mask.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]

train_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False,
    data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
    pipeline=train_pipeline)

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=train_dataset)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        train_dataset,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        train_dataset,
        data_prefix=dict(img_path='img_dir/test', seg_map_path='ann_dir/test'),
        pipeline=test_pipeline))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice'])
test_evaluator = val_evaluator
