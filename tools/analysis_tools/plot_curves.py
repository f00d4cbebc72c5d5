"""Top-1 and loss per epoch for one or more training runs.

    python tools/analysis_tools/plot_curves.py work_dirs/ci2p_vit_animals10 \
        work_dirs/vit_b16_animals10 --labels CI2P-ViT ViT-B/16 --out curves.png

The paper's main figure is such a plot: accuracy over epochs, CI2P-ViT
against ViT-B/16.

The logic lives in ``ci2p_mm/analysis/plot_curves.py`` (``-h`` for the
options).
"""
from ci2p_mm.analysis.plot_curves import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
