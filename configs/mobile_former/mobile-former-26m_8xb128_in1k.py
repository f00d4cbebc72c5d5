# Mobile-Former-26M on ImageNet-1k with the recipe of
# mobile-former-508m_8xb128_in1k.py (the authors publish that command only).
# 3.2M params, 26 MFLOPs at 224 (paper: 3.2M, 26M).
_base_ = ['./mobile-former-508m_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='26m'),
    head=dict(in_channels=96 * 6 + 128, mid_channels=[1024]))
