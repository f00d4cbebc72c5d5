"""ONNX export of CI2P-MM models, checked and timed with onnxruntime.

Needs the ``deploy`` extra (``pip install -e ".[deploy]"``: onnx,
onnxruntime and onnxscript resolved with CompressAI's ``numpy<2``); only the
functions that run onnxruntime import it.
"""
from .export import DEFAULT_OPSET, EXPORTERS, export_graph, modules_calling
from .graph import FEATURE_OUTPUTS, ExportGraph, InputContract, input_contract
from .model import (NO_CHECKPOINT, ExportError, build_export_model,
                    load_export_config)
from .parity import DEFAULT_ATOL, DEFAULT_RTOL, check_parity, ort_session
from .pytorch2onnx import ExportResult, export_config

__all__ = [
    'DEFAULT_OPSET', 'EXPORTERS', 'export_graph', 'modules_calling',
    'FEATURE_OUTPUTS', 'ExportGraph', 'InputContract', 'input_contract',
    'NO_CHECKPOINT', 'ExportError', 'build_export_model', 'load_export_config',
    'DEFAULT_ATOL', 'DEFAULT_RTOL', 'check_parity', 'ort_session',
    'ExportResult', 'export_config'
]
