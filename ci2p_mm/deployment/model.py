"""The model to export: built from a config, weights from a checkpoint.

The checkpoint is read with torch's safe loading and must fit the model
exactly, through the same checked load as ``tools/test.py``
(:func:`ci2p_mm.engine.checkpoint.load_checked_checkpoint`), so a foreign
file can neither run code nor leave part of the model random. ``none``
instead of a checkpoint keeps the model's own initialisation: random
weights for trying the export path, and the CI2P codec as
``patch_cfg.pretrained`` asks for it (CompressAI's weights, a local file,
or random with ``--no-pretrained``).
"""
from typing import Optional, Tuple

import torch.nn as nn
from mmpretrain.registry import MODELS

from ci2p_mm.engine.checkpoint import (checked_class_names, head_num_classes,
                                       load_checked_checkpoint,
                                       read_checkpoint_file)
from ci2p_mm.models import CI2PEncoder
from ci2p_mm.models.utils import CodecWeightsMixin
from ci2p_mm.utils import load_model_config, quiet_init_weights
from ci2p_mm.utils.errors import UserError
from .graph import FEATURE_OUTPUTS

#: The CHECKPOINT argument that means "no checkpoint".
NO_CHECKPOINT = 'none'


class ExportError(UserError, RuntimeError):
    """A model or setting that cannot be exported, with the fix."""


def load_export_config(config: str,
                       cfg_options: Optional[dict] = None,
                       features: bool = False,
                       no_pretrained: bool = False):
    """The config, with the feature outputs of :data:`FEATURE_OUTPUTS`
    set on the backbone for ``features`` (before ``cfg_options``, which may
    change them)."""
    cfg = load_model_config(config, no_pretrained=no_pretrained)
    if features:
        backbone = cfg.model.get('backbone', {})
        backbone.update(FEATURE_OUTPUTS.get(backbone.get('type', ''), {}))
    cfg.merge_from_dict(cfg_options or {})
    return cfg


def build_export_model(
        cfg,
        checkpoint: str,
        features: bool = False) -> Tuple[nn.Module, Optional[tuple]]:
    """Build ``cfg.model`` in eval mode and load ``checkpoint`` into it.

    Returns:
        tuple: The model and the checkpoint's class names, one per logit
        (None for none, and with ``features``, whose graph has no logits).

    Raises:
        ExportError: a model that cannot be exported as it is built.
        CheckpointError: a checkpoint that is unreadable or does not fit.
    """

    try:
        model = MODELS.build(cfg.model)
    except ValueError as err:
        backbone = cfg.model.get('backbone', {})
        if not features or backbone.get('type') not in FEATURE_OUTPUTS:
            raise
        raise ExportError(
            f'--features sets {backbone["type"]} out_indices='
            f'{backbone.get("out_indices")!r} (the outputs the mmdet/mmseg '
            f'configs take), which this arch refuses: {err} Choose others '
            f'with --cfg-options model.backbone.out_indices=...') from err
    refuse_latent_input(model)
    classes = None
    if checkpoint == NO_CHECKPOINT:
        quiet_init_weights(model)
    else:
        # --features builds the backbone for feature maps, which may drop
        # the classifier's pooling norm (out_type='avg_featmap' -> ln2).
        loaded = load_checked_checkpoint(
            model,
            read_checkpoint_file(checkpoint),
            checkpoint,
            f'the model of {cfg.filename} ({type(model.backbone).__name__})',
            allow_unused=features)
        if not features:
            classes = checked_class_names(loaded, head_num_classes(model),
                                          checkpoint)
    refuse_pending_codecs(model)
    return model.eval(), classes


def refuse_latent_input(model: nn.Module) -> None:
    """A CI2P model built for stored latents has no image input."""
    for name, module in model.named_modules():
        if isinstance(module, CI2PEncoder) and module.latent_input:
            raise ExportError(
                f'{name} takes stored codec latents '
                f'(patch_cfg.latent_input=True, a -latents config), so the '
                f'graph would have no image input. Export the image config '
                f'(its name without -latents) with the same checkpoint: the '
                f'weights are the same.')


def refuse_pending_codecs(model: nn.Module) -> None:
    """Exporting traces the model, which lets a codec without its weights
    through (FLOP counters need that); an exported file must not carry a
    random codec by accident."""
    for name, module in model.named_modules():
        if isinstance(module, CodecWeightsMixin) and module.codec_pending:
            raise ExportError(
                f'{name}: {module._codec_request()} has no weights, so the '
                f'exported graph would carry a random codec. Give a '
                f'checkpoint that holds them, or --no-pretrained for a '
                f'random codec on purpose.')
