"""What a codec keeps: bpp, PSNR and MS-SSIM per image, and picture panels.

Command line of ``ci2p_mm.codec.report``, where the logic and its documentation
live (``python tools/analysis_tools/codec_report.py -h`` for the options).
"""
import sys

from ci2p_mm.codec.report import USER_ERRORS, main

if __name__ == '__main__':
    try:
        main()
    except USER_ERRORS as err:
        sys.exit(f'codec_report.py: error: {err}')
