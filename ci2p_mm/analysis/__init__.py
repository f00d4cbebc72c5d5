"""Measuring models: FLOPs (:mod:`.flops`), speed and memory
(:mod:`.benchmark`, ``tools/analysis_tools/benchmark.py``) and mmdet/mmpose
step timing (:mod:`.downstream_timing`). Only :mod:`.flops` is imported
here; the others are imported by their tools."""
from .flops import model_flops, sdpa_flop_jit

__all__ = ['model_flops', 'sdpa_flop_jit']
