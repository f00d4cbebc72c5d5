# CI2P-ViT-B: CompressAI's bmshj2018-factorized (q5) encoder, frozen, then
# PatchReshape and a ViT-B; global average pooling and a linear classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CI2PViT',
        arch='b',
        img_size=256,
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            quality=5,
            pretrained=True,
            frozen=True),
        out_type='avg_featmap',
        with_cls_token=False),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# The codec wants RGB in [0, 1], not mean/std-normalised images.
data_preprocessor = dict(type='CI2PDataPreprocessor', num_classes=10)
