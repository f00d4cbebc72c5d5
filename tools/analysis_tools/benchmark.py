"""Inference and training-step throughput and peak memory of config models.

Command line of ``ci2p_mm.analysis.benchmark``, where the logic and its
documentation live (``python tools/analysis_tools/benchmark.py -h`` for the
options).
"""
from ci2p_mm.analysis.benchmark import main

if __name__ == '__main__':
    main()
