"""The whole CI2P job on a small built-in data set, on a CPU, in minutes.

Command line of ``ci2p_mm.demo``, where the logic and its documentation live
(``python tools/run_demo.py -h`` for the options).
"""
from ci2p_mm.demo import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
