# Mobile-Former-52M on ImageNet-1k with the recipe of
# mobile-former-508m_8xb128_in1k.py (the authors publish that command only).
# 3.5M params, 52 MFLOPs at 224 (paper: 3.5M, 52M).
_base_ = ['./mobile-former-508m_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='52m'),
    head=dict(in_channels=96 * 6 + 128, mid_channels=[1024]))
