"""What each speed lever buys, from benchmark.py JSON reports.

Command line of ``ci2p_mm.analysis.lever_table``
(``python tools/analysis_tools/lever_table.py -h``).
"""
from ci2p_mm.analysis.lever_table import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
