"""Export a classifier (or its backbone) to ONNX; check and time it with
onnxruntime. Command line of ``ci2p_mm.deployment.pytorch2onnx`` (``-h`` for
the options; docs/deployment.md for the input contract and outputs)."""
from ci2p_mm.deployment.pytorch2onnx import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
