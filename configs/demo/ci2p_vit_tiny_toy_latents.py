# Alias of configs/ci2p_vit/ci2p-vit-t_1xb32-adam-12e_toy-animals10-128px-latents.py
# (OpenMMLab naming, listed in model-index.yml), kept for this documented path.
_base_ = [
    '../ci2p_vit/ci2p-vit-t_1xb32-adam-12e_toy-animals10-128px-latents.py'
]
