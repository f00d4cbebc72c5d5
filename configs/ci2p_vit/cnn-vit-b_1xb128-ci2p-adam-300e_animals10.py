# CNN-ViT control: CI2P-ViT's architecture, but the encoder starts from
# random weights and trains with the ViT. It separates the value of the
# frozen codec from the value of having a CNN stem.
_base_ = ['./ci2p-vit-b_1xb128-adam-300e_animals10.py']

model = dict(backbone=dict(patch_cfg=dict(pretrained=False, frozen=False)))
