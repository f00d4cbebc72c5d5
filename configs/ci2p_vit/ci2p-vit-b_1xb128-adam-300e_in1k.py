# CI2P-ViT-B on ImageNet-1k with the paper's recipe.
_base_ = [
    '../_base_/models/ci2p_vit_b.py',
    '../_base_/datasets/imagenet_bs128_256.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=1000))
data_preprocessor = dict(num_classes=1000)
