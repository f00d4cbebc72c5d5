"""Forward / backward / predict times of the downstream models on this machine.

Command line of ``ci2p_mm.analysis.downstream_timing``, where the logic and its
documentation live (``python tools/analysis_tools/downstream_timing.py -h`` for
the options).
"""
from ci2p_mm.analysis.downstream_timing import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
