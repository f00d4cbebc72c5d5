# Mobile-Former-96M on ImageNet-1k with the recipe of
# mobile-former-508m_8xb128_in1k.py (the authors publish that command only).
# 4.6M params, 96 MFLOPs at 224 (paper: 4.6M, 96M).
_base_ = ['./mobile-former-508m_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='96m'),
    head=dict(in_channels=128 * 6 + 128, mid_channels=[1280]))
