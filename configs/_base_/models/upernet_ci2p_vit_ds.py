# UPerNet on CI2P-ViT^ds (DualScaleViT), mmseg 1.x: the model shared by the
# segmentation configs in configs/downstream/ (they set crop size, classes,
# losses, optimiser and schedule).
#
# The pyramid UPerNet fuses: the frozen codec encoder's own maps at strides
# 4 and 8 ('enc_s4', 'enc_s8': 128 ch), ViT stage 1 at stride 16 (layer 5:
# 192 ch) and stage 2 at stride 32 (layer 11: 768 ch); an FCN auxiliary head
# reads stage 1.
pretrained = 'checkpoints/ci2p_vit_ds_imagenet.pth'  # classification ckpt
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    # The codec wants unnormalised RGB in [0, 1]: x / 255, BGR -> RGB;
    # crops are multiples of 32 (the backbone's coarsest stride).
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    backbone=dict(
        type='DualScaleViT',  # or 'mmpretrain.DualScaleViT'
        arch='b',
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            quality=5,
            pretrained=True,
            frozen=True),
        out_type='featmap',
        out_indices=('enc_s4', 'enc_s8', 5, 11),
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(
        type='UPerHead',
        in_channels=[128, 128, 192, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=192,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
