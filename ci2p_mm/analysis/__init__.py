"""Measuring models: FLOPs (:mod:`.flops`), speed and memory
(:mod:`.benchmark`, ``tools/analysis_tools/benchmark.py``, with its modes
:mod:`.step`, :mod:`.end_to_end`, :mod:`.latent_storage` and the shared
:mod:`.timing`) and mmdet/mmpose/mmseg step timing
(:mod:`.downstream_timing`), all timed by :mod:`ci2p_mm.utils.timing`
(torch.utils.benchmark). Only :mod:`.flops` is imported here; the others
are imported by their tools."""
from .flops import model_flops, sdpa_flop_jit

__all__ = ['model_flops', 'sdpa_flop_jit']
