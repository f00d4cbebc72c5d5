"""Inference and training throughput and peak memory of config models.

Command line of ``ci2p_mm.analysis.benchmark``, where the modes and their
documentation live (``python tools/analysis_tools/benchmark.py -h``).
"""
from ci2p_mm.analysis.benchmark import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
