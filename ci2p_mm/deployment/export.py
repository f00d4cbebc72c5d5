"""``torch.onnx.export`` of an :class:`~ci2p_mm.deployment.graph.ExportGraph`,
with refusals that name the module and the option at fault.

Two exporters (``exporter=``):

* ``'torchscript'`` (default): torch's TorchScript-based exporter
  (``dynamo=False``). It exports all six families from a batch-1 example
  with a dynamic batch axis, at opsets 14-20 (scaled dot-product attention
  needs 14; TensorRT 8.x and older onnxruntime builds read 17), in well
  under a second for the tests' small models, and needs no package beyond
  torch. torch >= 2.9 marks it deprecated.
* ``'dynamo'``: the ``torch.export``-based exporter (torch's default since
  2.9; needs ``onnxscript``). It writes opset 18 and later only (its
  conversion to older opsets fails on LayerNormalization and silently keeps
  18), specialises a batch of 1, so a dynamic batch is traced from a batch
  of 2, and takes 5-15 s on the same small models.

Both give the same outputs within float32 rounding (tests/test_deployment.py).
"""
import contextlib
import os
import re
import sys
import warnings
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils.module_tracker import ModuleTracker

from ci2p_mm.utils.errors import listing
from .model import ExportError

EXPORTERS = ('torchscript', 'dynamo')
DEFAULT_OPSET = {'torchscript': 17, 'dynamo': 18}
try:  # torch 2.14: the TorchScript exporter writes opsets up to 20
    from torch.onnx._constants import \
        ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as _TORCHSCRIPT_MAX_OPSET
except ImportError:
    _TORCHSCRIPT_MAX_OPSET = 20
#: The opsets each exporter writes.
OPSET_RANGE = {
    'torchscript': (7, _TORCHSCRIPT_MAX_OPSET),
    'dynamo': (18, None)
}


def check_opset(exporter: str, opset: Optional[int] = None) -> int:
    """The opset to write (``opset``, else the exporter's default); refuse
    an exporter or an opset it cannot write, before tracing."""
    if exporter not in EXPORTERS:
        raise ExportError(f'--exporter {exporter!r}: choose from '
                          f'{", ".join(EXPORTERS)}.')
    opset = DEFAULT_OPSET[exporter] if opset is None else opset
    low, high = OPSET_RANGE[exporter]
    if opset < low:
        other = ('; use --exporter torchscript for opsets 14-17'
                 if exporter == 'dynamo' else '')
        raise ExportError(
            f'--opset {opset}: the {exporter} exporter writes opset {low} '
            f'and later{other}.')
    if high is not None and opset > high:
        raise ExportError(
            f'--opset {opset}: the {exporter} exporter writes opsets up to '
            f'{high}; use --exporter dynamo for later ones.')
    return opset


@contextlib.contextmanager
def _quiet_export():
    """Silence what every export prints and that needs no action: tracer
    warnings on shape arithmetic (the shapes are fixed but the batch),
    the TorchScript exporter's deprecation notice (chosen knowingly, see
    this module's docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings(
                'ignore', category=category, module=r'torch\.onnx')
        warnings.filterwarnings('ignore', message='.*legacy TorchScript')
        yield


@contextlib.contextmanager
def _native_stdout_discarded():
    """Discard what native code writes to stdout: the TorchScript
    exporter's C++ log prints the whole TorchScript graph (hundreds of
    lines) before an export error, whatever ``verbose`` says (torch 2.14
    enables its log by testing a function object for truth). Our error
    replaces it."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def export_graph(graph: nn.Module,
                 example: torch.Tensor,
                 path: str,
                 input_name: str,
                 output_names: List[str],
                 opset: int,
                 dynamic_batch: bool,
                 exporter: str = 'torchscript') -> None:
    """Write ``graph`` traced on ``example`` to ``path`` as ONNX.

    Raises:
        ExportError: naming the operator, the modules that use it and the
            option to change (``--opset``, ``--exporter``).
    """
    check_opset(exporter, opset)  # public: direct callers come here first
    if exporter == 'torchscript':
        quiet = _native_stdout_discarded()
        axes = dict.fromkeys([input_name, *output_names], {0: 'batch'})
        options = dict(
            dynamo=False,
            do_constant_folding=True,
            dynamic_axes=axes if dynamic_batch else None)
    else:
        quiet = contextlib.nullcontext()
        if dynamic_batch and example.size(0) < 2:
            # torch.export specialises sizes of 1 to constants.
            example = example.expand(2, *example.shape[1:])
        batch = [{0: torch.export.Dim('batch')}] if dynamic_batch else None
        options = dict(
            dynamo=True,
            external_data=False,
            verbose=False,
            dynamic_shapes=batch)
    try:
        with _quiet_export(), torch.no_grad(), quiet:
            torch.onnx.export(
                graph, (example, ),
                path,
                opset_version=opset,
                input_names=[input_name],
                output_names=output_names,
                **options)
    except torch.onnx.errors.OnnxExporterError as err:
        raise export_refusal(err, graph, example, opset, exporter) from err


# ------------------------------------------------------------- refusals ---
_OPERATOR = re.compile(r"aten(?:::|\.)([A-Za-z0-9_]+)")
_MIN_OPSET = re.compile(r'added in (?:opset )?version (\d+)')


def export_refusal(err: Exception, graph: nn.Module, example: torch.Tensor,
                   opset: int, exporter: str) -> ExportError:
    """An :class:`ExportError` for an exporter failure: the operator, the
    modules whose forward calls it, and what to change."""
    text = str(err)
    operator = _OPERATOR.search(text)
    needed = _MIN_OPSET.search(text)
    what = f'The {exporter} exporter cannot write this model as ONNX opset ' \
           f'{opset}'
    if operator:
        op = operator.group(1)
        users = modules_calling(graph, example, op)
        where = (f', used by {listing(users, 3)}' if users else '')
        what += f': it has no translation of aten::{op}{where}'
    if needed:
        fix = f'Use --opset {needed.group(1)} or later.'
    elif exporter == 'torchscript':
        fix = 'Try --exporter dynamo or a later --opset.'
    else:
        fix = 'Try --exporter torchscript (the default).'
    first = text.strip().splitlines()[0] if text.strip() else ''
    return ExportError(f'{what}. {fix} ({type(err).__name__}: {first[:300]})')


def modules_calling(graph: nn.Module, example: torch.Tensor,
                    operator: str) -> List[str]:
    """``'qualified.name (Class)'`` of the innermost modules of
    ``graph.model`` whose forward calls the torch function named like the
    ATen ``operator`` (e.g. ``scaled_dot_product_attention``), found by
    running ``graph`` once on ``example``."""
    root = getattr(graph, 'model', graph)
    modules = dict(root.named_modules())
    # ModuleTracker names modules from the outermost one's class.
    prefix = f'{type(graph).__name__}.' + ('model.'
                                           if root is not graph else '')
    tracker, target, found = ModuleTracker(), operator.strip('_'), []

    class Recorder(TorchFunctionMode):

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, '__name__', '').strip('_') == target:
                # The modules being run are nested: the longest is innermost.
                name = max(tracker.parents, key=len)[len(prefix):]
                if name and name in modules and name not in found:
                    found.append(name)
            return func(*args, **(kwargs or {}))

    try:
        with torch.no_grad(), tracker, Recorder():
            graph(example)
    except Exception:  # the names found so far are still worth giving
        pass
    return [f'{n} ({type(modules[n]).__name__})' for n in found]


# ------------------------------------------------------------- metadata ---
def write_metadata(path: str,
                   metadata: Dict[str, str],
                   doc_string: str = '') -> int:
    """Store ``metadata`` in the ONNX file's ``metadata_props`` (read back
    by onnxruntime's ``get_modelmeta().custom_metadata_map``); return the
    opset the file declares."""
    import onnx
    model = onnx.load(path)
    onnx.helper.set_model_props(model, metadata)
    if doc_string:
        model.doc_string = doc_string
    onnx.save(model, path)
    return next(
        o.version for o in model.opset_import if o.domain in ('', 'ai.onnx'))
