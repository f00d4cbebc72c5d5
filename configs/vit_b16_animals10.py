# Alias of configs/vit/vit-b-p16_1xb128-ci2p-adam-300e_animals10.py
# (OpenMMLab naming, listed in model-index.yml), kept for this documented path.
_base_ = ['./vit/vit-b-p16_1xb128-ci2p-adam-300e_animals10.py']
