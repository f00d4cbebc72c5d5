# Alias of configs/ci2p_vit/cnn-vit-b_1xb128-ci2p-adam-300e_animals10.py
# (OpenMMLab naming, listed in model-index.yml), kept for this documented path.
_base_ = ['./ci2p_vit/cnn-vit-b_1xb128-ci2p-adam-300e_animals10.py']
