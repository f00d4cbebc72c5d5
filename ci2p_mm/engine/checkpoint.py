"""Loading mmengine's own checkpoints under torch's safe ``weights_only``.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
0.10.7 calls ``torch.load`` without the argument. Its full checkpoints
pickle a few types beyond tensors: numpy arrays and scalars (in the message
hub's logs), ``HistoryBuffer``, and ``getattr(HistoryBuffer, 'min')``-style
references to its statistics methods. We allow exactly those, and map the
pickled ``getattr`` to a version that resolves only HistoryBuffer's
statistics methods, so a foreign file can still not call anything else.
Safety is never switched off.
"""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer


#: HistoryBuffer's built-in statistics (its registry fills lazily).
_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name):
    """``getattr`` for unpickling: HistoryBuffer's statistics only."""
    if obj is HistoryBuffer and (name in _STATISTICS
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise torch.serialization.pickle.UnpicklingError(
        f'Refusing getattr({obj!r}, {name!r}) in a checkpoint: only '
        f'HistoryBuffer statistics methods are allowed.')


def _numpy_globals():
    from numpy.core import multiarray  # numpy<2 (compressai pins it)
    types = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy >= 1.25 pickles dtypes by their class (numpy.dtypes.Float64DType)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [getattr(dtypes, n) for n in dir(dtypes)
                  if n.endswith('DType')]
    # Under numpy 1.x, arrays record 'numpy.core.multiarray.*'.
    types += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
              (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    return types


def allow_mmengine_checkpoints() -> None:
    """Register the types of mmengine's full checkpoints as safe."""
    torch.serialization.add_safe_globals(_numpy_globals() + [
        HistoryBuffer,
        (history_buffer_getattr, '__builtin__.getattr'),
        (history_buffer_getattr, 'builtins.getattr'),
    ])
