# The paper's baseline: mmpretrain's ViT-B/16 at 256x256, trained from
# scratch with the same head as CI2P-ViT (GAP over tokens + linear).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=256,
        patch_size=16,
        out_type='avg_featmap',
        with_cls_token=False),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# A plain ViT gets mmpretrain's usual ImageNet normalisation.
data_preprocessor = dict(
    num_classes=10,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
