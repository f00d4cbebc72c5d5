# Alias of configs/vit/vit-t-p16_1xb32-ci2p-adam-12e_toy-animals10-128px.py
# (OpenMMLab naming, listed in model-index.yml), kept for this documented path.
_base_ = ['../vit/vit-t-p16_1xb32-ci2p-adam-12e_toy-animals10-128px.py']
