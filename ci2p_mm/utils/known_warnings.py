"""Known, harmless framework warnings, silenced only where CI2P-MM
triggers them.

Each entry is a warning this project's own imports or config loading set
off and that says nothing about the user's setup or code:

* mmcv-lite has no compiled ops, so ``mmcv.cnn.bricks.transformer`` warns
  that ``MultiScaleDeformableAttention`` is missing (classification never
  uses it; mmdet/mmpose need full mmcv, see the README);
* mmengine reads ``mmpretrain::`` config bases through ``pkg_resources``,
  whose import warns that it is deprecated (``setuptools<81`` is pinned);
* CompressAI's optional dependencies call ``torch.jit.script`` at import,
  which torch >= 2.10 marks deprecated.

:func:`known_warnings_silenced` is a ``warnings.catch_warnings`` block:
the filters are gone when it ends, so warnings from the user's own code,
or other warnings from these libraries, still show.
"""
import warnings
from contextlib import contextmanager

#: (category, message regex) of the known harmless warnings.
KNOWN_HARMLESS = (
    (UserWarning, r'Fail to import ``MultiScaleDeformableAttention``'),
    (UserWarning, r'pkg_resources is deprecated as an API'),
    (FutureWarning, r'`torch\.jit\.script` is deprecated'),
)


@contextmanager
def known_warnings_silenced():
    """Ignore :data:`KNOWN_HARMLESS` inside the block, nothing else."""
    with warnings.catch_warnings():
        for category, message in KNOWN_HARMLESS:
            warnings.filterwarnings(
                'ignore', message=message, category=category)
        yield
