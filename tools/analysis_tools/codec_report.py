"""What a codec keeps: bpp, PSNR and MS-SSIM per image, and picture panels.

Command line of ``ci2p_mm.codec.report``, where the logic and its documentation
live (``python tools/analysis_tools/codec_report.py -h`` for the options).
"""
from ci2p_mm.codec.report import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
