"""When a CI2P encoder's codec weights arrive: ``init_weights`` or a
checkpoint, never the constructor.

OpenMMLab builds a model, then either initialises it (``init_weights``, which
the Runner calls when training starts) or loads a checkpoint into it
(``tools/test.py``, ``get_model(cfg, pretrained=CKPT)``, the inferencers,
``load_from``, ``--resume``). Codec weights follow the same rule:

* constructing a :class:`~ci2p_mm.models.CI2PEncoder` with
  ``pretrained=True`` (CompressAI's zoo) or ``pretrained=PATH`` only records
  the request: no download, no file read. The codec starts random and
  *pending*;
* ``init_weights()`` fetches the requested weights through
  :func:`ci2p_mm.codec.build_codec` (download errors say what to do);
* loading a state dict that holds the encoder's weights (any loader that
  goes through ``Module._load_from_state_dict``: torch's
  ``load_state_dict``, mmengine's ``load_checkpoint`` and
  ``load_state_dict``, the TTA wrapper, ``init_cfg=Pretrained``) satisfies
  the request, so a checkpoint never needs the network or the codec file;
* a pending encoder refuses to run (a random codec would silently give
  meaningless tokens) and names the fix. Tracing (FLOP counters, which feed
  arbitrary values) is let through with a warning, since it does not depend
  on weights; so is exporting, which ``ci2p_mm.deployment`` checks itself
  before it starts.

:class:`~ci2p_mm.engine.CI2PRunner` calls ``init_weights`` under
:func:`codec_fetch_deferred` and fetches what is still pending after its
checkpoint is loaded (:func:`load_pending_codecs`), so fine-tuning and
resuming from a checkpoint work offline too.
"""
import warnings
from contextlib import contextmanager
from typing import List, Union

import torch.nn as nn

from ci2p_mm.codec import build_codec
from .tracing import is_tracing_or_exporting

_deferred = 0


@contextmanager
def codec_fetch_deferred():
    """Inside, ``init_weights`` leaves pending codecs pending (a checkpoint
    loaded afterwards is expected to provide them)."""
    global _deferred
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1


class CodecWeightsMixin:
    """Deferred codec weights for a module whose codec ``g_a`` is
    ``self.encoder`` and whose request is ``self.codec``, ``self.quality``
    and ``self.pretrained`` (see this module's docstring)."""

    def _request_codec_weights(self, pretrained: Union[bool, str]) -> None:
        self.pretrained = pretrained
        # Counts weight arrivals; codec_weights_kept compares it.
        self.codec_weight_loads = 0
        self._codec_pending = bool(pretrained)
        self._warned_tracing = False

    @property
    def codec_pending(self) -> bool:
        """True while requested codec weights have not arrived."""
        return self._codec_pending

    def _codec_arrived(self) -> None:
        self._codec_pending = False
        self.codec_weight_loads += 1

    def load_codec_weights(self) -> None:
        """Fetch the requested weights now (download or file)."""
        codec = build_codec(self.codec, self.quality, self.pretrained)
        self.encoder.load_state_dict(codec.g_a.state_dict())
        self._codec_arrived()

    def init_weights(self) -> None:
        # Codec weights come from the codec (CompressAI's init, the zoo, a
        # file or a checkpoint), never from a parent's ViT-style init_cfg.
        if self._codec_pending and not _deferred:
            self.load_codec_weights()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # The encoder's state-dict keys decide whether a loaded state dict
        # carries the codec.
        expected = self.encoder.state_dict()
        head = f'{prefix}encoder.'
        if all(head +
               key in state_dict and state_dict[head +
                                                key].shape == value.shape
               for key, value in expected.items()):
            self._codec_arrived()
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def check_codec_ready(self) -> None:
        """Refuse to run a codec whose requested weights never arrived."""
        if not self._codec_pending:
            return
        if is_tracing_or_exporting():
            if not self._warned_tracing:
                self._warned_tracing = True
                warnings.warn(
                    f'Tracing {self._codec_request()} whose weights were '
                    f'never loaded: fine for counting FLOPs, but an exported '
                    f'model would carry a random codec.')
            return
        raise RuntimeError(
            f'{self._codec_request()} was built but its weights never '
            f'arrived, so it would run a random codec. Call '
            f'model.init_weights() to fetch them (mmengine\'s Runner does '
            f'when training starts), or load a checkpoint that holds them '
            f'(get_model(CONFIG, pretrained=CHECKPOINT), '
            f'mmengine.runner.load_checkpoint, tools/test.py CONFIG '
            f'CHECKPOINT). For a random codec on purpose, set '
            f'patch_cfg.pretrained=False.')

    def _codec_request(self) -> str:
        return (f'The CI2P codec encoder ({self.codec!r} quality '
                f'{self.quality}, pretrained={self.pretrained!r})')


def load_pending_codecs(model: nn.Module) -> List[str]:
    """Fetch the weights of every codec still pending in ``model``; return
    the module names that were fetched."""
    fetched = []
    for name, module in model.named_modules():
        if isinstance(module, CodecWeightsMixin) and module.codec_pending:
            module.load_codec_weights()
            fetched.append(name)
    return fetched
