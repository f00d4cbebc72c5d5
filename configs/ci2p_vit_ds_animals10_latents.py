# Alias of configs/ci2p_vit_ds/ci2p-vit-ds-b_1xb128-adam-300e_animals10-latents.py
# (OpenMMLab naming, listed in model-index.yml), kept for this documented path.
_base_ = ['./ci2p_vit_ds/ci2p-vit-ds-b_1xb128-adam-300e_animals10-latents.py']
