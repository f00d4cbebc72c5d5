"""onnxruntime's outputs against PyTorch's on the same images.

The images are random 8-bit pixels, given to each side as it is meant to be
fed: PyTorch gets them through the model's own data preprocessor (BGR to
RGB, mean/std, as mmpretrain runs it), the graph gets them as its
:class:`~ci2p_mm.deployment.graph.InputContract` says (already normalised,
or 0-255 RGB when the normalisation is in the graph). A check therefore
covers the documented input contract as well as the exporter.

Outputs agree when ``|ort - torch| <= atol + rtol * |torch|`` everywhere
(numpy's ``allclose``); the defaults, ``atol=1e-4, rtol=1e-3``, leave fp32
rounding of a ViT-B (measured: below 1e-5) a wide margin and catch any
real difference (a wrong op or layout moves logits by 1e-2 and more).
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .graph import ExportGraph, InputContract, as_tuple
from .model import ExportError

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3


def import_onnxruntime():
    """``onnxruntime``, or an error saying how to install it with
    CompressAI's ``numpy<2``."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as err:
        raise ExportError(
            f'{err.name or "onnx/onnxruntime"} is not installed. Install the '
            f'deploy extra: pip install -e ".[deploy]" (it keeps numpy<2, '
            f'which CompressAI needs; a bare `pip install onnx onnxruntime` '
            f'would upgrade numpy to 2.x).') from err
    return onnxruntime


def ort_session(path: str, threads: int = 0):
    """An onnxruntime CPU session; ``threads`` intra-op threads (0: its
    default, one per physical core)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        path, sess_options=options, providers=['CPUExecutionProvider'])


def random_images(batch: int,
                  hw: Tuple[int, int],
                  seed: int = 0) -> torch.Tensor:
    """``[B, 3, H, W]`` uint8 pixels, BGR as mmcv decodes images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(
        0, 256, (batch, 3, *hw), dtype=torch.uint8, generator=generator)


def graph_input(model: nn.Module, images: torch.Tensor,
                contract: InputContract) -> torch.Tensor:
    """What the exported graph takes for ``images`` (BGR uint8)."""
    if contract.in_graph:
        pixels = images.float()
        return pixels.flip(1) if contract.rgb else pixels
    with torch.no_grad():
        return model.data_preprocessor({'inputs': images}, False)['inputs']


@dataclass
class OutputParity:
    """One output's agreement at one batch size."""
    name: str
    batch: int
    max_abs: float
    max_rel: float  # max |diff| / max |reference|
    scale: float  # max |reference|
    ok: bool

    def describe(self) -> str:
        return (f'batch {self.batch}: {self.name:<12} max abs diff '
                f'{self.max_abs:.2e}, max rel diff {self.max_rel:.2e} '
                f'(|output| up to {self.scale:.3g})  '
                f'{"ok" if self.ok else "MISMATCH"}')


def check_parity(model: nn.Module,
                 onnx_path: str,
                 contract: InputContract,
                 features: bool,
                 hw: Tuple[int, int],
                 batches: Sequence[int],
                 atol: float = DEFAULT_ATOL,
                 rtol: float = DEFAULT_RTOL,
                 seed: int = 0) -> List[OutputParity]:
    """Run the ONNX file and the model on the same random images, once per
    batch size in ``batches``; compare every output."""
    session = ort_session(onnx_path)
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    results = []
    for i, batch in enumerate(batches):
        images = random_images(batch, hw, seed + i)
        # PyTorch's outputs as mmpretrain computes them: data
        # preprocessor, then ``model(x, mode='tensor')`` or the backbone.
        with torch.no_grad():
            x = model.data_preprocessor({'inputs': images}, False)['inputs']
            expected = as_tuple(ExportGraph(model, features)(x))
        got = session.run(
            None, {input_name: graph_input(model, images, contract).numpy()})
        if len(got) != len(expected):
            raise ExportError(f'{onnx_path} has {len(got)} outputs, the model '
                              f'{len(expected)}: not the graph of this model.')
        for name, ref, out in zip(names, expected, got):
            ref = ref.float().numpy()
            diff = np.abs(out.astype(np.float64) - ref)
            scale = float(np.abs(ref).max()) if ref.size else 0.
            max_abs = float(diff.max()) if diff.size else 0.
            ok = out.shape == ref.shape and np.allclose(out, ref, rtol, atol)
            results.append(
                OutputParity(name, batch, max_abs,
                             max_abs / scale if scale else 0., scale, ok))
    return results
