"""Check every image of a config's datasets before a long run.

Command line of ``ci2p_mm.datasets.verify``, where the logic and its
documentation live (``python tools/misc/verify_dataset.py -h`` for the
options). Exit status: 0 all good, 1 bad files listed, 2 a data set cannot
be built.
"""
import sys

import ci2p_mm  # noqa: F401  registers CI2P datasets and transforms
from ci2p_mm.datasets.verify import main

if __name__ == '__main__':
    sys.exit(main())
