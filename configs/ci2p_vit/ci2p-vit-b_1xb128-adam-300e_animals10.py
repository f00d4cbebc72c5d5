# CI2P-ViT-B on Animals-10 with the paper's recipe:
#   python tools/train.py configs/ci2p_vit/ci2p-vit-b_1xb128-adam-300e_animals10.py
# (configs/ci2p_vit_animals10.py is an alias of this file)
_base_ = [
    '../_base_/models/ci2p_vit_b.py',
    '../_base_/datasets/animals10_bs128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]
