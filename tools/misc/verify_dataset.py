"""Check every image of a config's datasets before a long run.

Command line of ``ci2p_mm.datasets.verify``, where the logic and its
documentation live (``python tools/misc/verify_dataset.py -h`` for the
options). Exit status: 0 all good, 1 bad files listed, 2 a data set cannot
be built.
"""
from ci2p_mm.datasets.verify import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
