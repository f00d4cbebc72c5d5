"""CPU img/s of onnxruntime and PyTorch eager for several configs, with
ratios. Command line of ``ci2p_mm.deployment.benchmark_onnx`` (``-h`` for
the options)."""
from ci2p_mm.deployment.benchmark_onnx import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
