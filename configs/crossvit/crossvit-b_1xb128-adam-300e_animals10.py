# CrossViT-B on Animals-10 at 240x240, as crossvit-s_1xb128-adam-300e_animals10.py.
_base_ = ['./crossvit-s_1xb128-adam-300e_animals10.py']

model = dict(backbone=dict(arch='b'), head=dict(in_channels=384 + 768))
