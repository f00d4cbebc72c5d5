"""Params and FLOPs of SegNetr against a vanilla U-Net (see
ci2p_mm/analysis/segnetr_vs_unet.py)."""
from ci2p_mm.analysis.segnetr_vs_unet import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
