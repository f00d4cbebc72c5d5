"""``torch.compile`` for training: the model's forward, not mmengine's step.

mmengine's ``cfg.compile`` compiles ``model.train_step``, so dynamo also
traces the optimizer wrapper, its AMP context and the loss parsing. With
``AmpOptimWrapper`` that trace is fragile: on an H200 with torch 2.11 it
failed inside ``mmengine.runner.amp.autocast`` (``digit_version`` ->
``packaging.version.Version`` -> ``InternalTorchDynamoError``), so
``tools/train.py --amp --compile`` could not start. The forward is all the
compute there is to compile: AOTAutograd compiles its backward with it, and
the optimizer step is outside the graph in both cases. ``CI2PRunner`` and the
benchmark tool both compile through :func:`compile_forward`.
"""
from typing import Optional, Union

import torch
from torch import nn

#: Set on a module whose forward has been compiled (compiling twice would
#: wrap the compiled function again).
COMPILED_FLAG = '_ci2p_compiled_forward'


def compile_cfg_kwargs(compile_cfg: Union[bool, dict, None]) -> Optional[dict]:
    """``torch.compile`` keyword arguments from an mmengine ``compile``
    setting (``True``, ``False``/``None`` or a dict such as
    ``dict(backend='inductor', mode='max-autotune')``); None: do not
    compile."""
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        return {}
    if isinstance(compile_cfg, dict):
        return dict(compile_cfg)
    raise TypeError('the config setting `compile` must be True, False or a '
                    'dict of torch.compile arguments, got '
                    f'{type(compile_cfg).__name__} {compile_cfg!r}')


def compile_forward(model: nn.Module, **kwargs) -> nn.Module:
    """Replace ``model.forward`` by its ``torch.compile``'d version, in place.

    Parameters, buffers and the state dict keep their names (no
    ``_orig_mod.`` prefix, unlike ``torch.compile(model)``), so checkpoints
    are the same as without compiling, and model wrappers (DDP) call the
    compiled forward through ``module(...)``. A second call does nothing.
    """
    if not getattr(model, COMPILED_FLAG, False):
        model.forward = torch.compile(model.forward, **kwargs)
        setattr(model, COMPILED_FLAG, True)
    return model
