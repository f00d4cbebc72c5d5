# Mobile-Former-294M on ImageNet-1k with the recipe of
# mobile-former-508m_8xb128_in1k.py (the authors publish that command only).
# 11.4M params, 295 MFLOPs at 224 (paper: 11.4M, 294M).
_base_ = ['./mobile-former-508m_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='294m'),
    head=dict(in_channels=192 * 6 + 192, mid_channels=[1920]))
