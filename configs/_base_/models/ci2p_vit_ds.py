# CI2P-ViT^ds: 6 layers at width 192 on the codec's 16x16 latent grid, a
# stride-2 inverted residual, 6 layers at width 768 on 8x8; GAP + linear.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DualScaleViT',
        arch='b',
        img_size=256,
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            quality=5,
            pretrained=True,
            frozen=True),
        out_type='avg_featmap'),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

data_preprocessor = dict(type='CI2PDataPreprocessor', num_classes=10)
