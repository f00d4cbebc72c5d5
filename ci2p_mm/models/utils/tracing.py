"""Is the forward being recorded rather than run on data?"""
import torch


def is_tracing_or_exporting() -> bool:
    """True while a tracer or an exporter records the forward.

    ``torch.jit.trace`` (FLOP counters, the TorchScript-based ONNX
    exporter), ``torch.onnx.export`` (either exporter) and
    ``torch.export`` (which the dynamo-based ONNX exporter runs) feed
    placeholder values: checks that read data (``.item()``) would record a
    constant, or fail on a symbolic value, so they are skipped there and
    only there.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    is_exporting = getattr(
        getattr(torch, 'compiler', None), 'is_exporting', None)  # torch >= 2.6
    return bool(is_exporting is not None and is_exporting())
