"""Per-sample seeds and the first draw they give, for whole batches at once.

:class:`~ci2p_mm.datasets.ResumableSampler` gives the ``k``-th draw of an
epoch the seed ``SeedSequence([seed, epoch, k]).generate_state(1)[0]``, and
the datasets seed NumPy's global generator with it before the pipeline
runs (:func:`~ci2p_mm.datasets.robust.seeded_rng`). Computed one sample at
a time that costs ~25 us of Python per seed and ~6 us per first draw,
which a GPU consuming thousands of samples a second cannot afford on its
main thread (device-resident latents draw their flips there). The two
functions below compute exactly the same numbers for arrays of samples:

* :func:`sample_seeds`: NumPy's ``SeedSequence`` hash (entropy of three
  32-bit words, pool of four, one output word), vectorised over positions.
* :func:`first_uniforms`: what ``np.random.seed(s); np.random.rand()``
  returns (legacy MT19937 seeding, the first twist of the two words the
  first double uses, tempering, 53-bit double), vectorised over seeds.

Both are checked against NumPy itself in the tests, over many random
inputs; NumPy documents both streams as stable (``SeedSequence``'s
algorithm and ``RandomState``'s legacy stream are reproducibility
contracts).
"""
import numpy as np

# numpy/random/bit_generator.pyx (SeedSequence)
_INIT_A = 0x43b0d7e5
_MULT_A = 0x931e8875
_INIT_B = 0x8b51f9dd
_MULT_B = 0x58f38ded
_MIX_MULT_L = np.uint32(0xca01f9dd)
_MIX_MULT_R = np.uint32(0x4973f715)
_XSHIFT = np.uint32(16)
_POOL_SIZE = 4
_MASK32 = 0xffffffff

# numpy/random/src/mt19937 (legacy seeding and the first doubles)
_MT_M = 397
_MT_INIT_MULT = 1812433253
_MT_MATRIX_A = np.uint64(0x9908b0df)
_MT_UPPER = np.uint64(0x80000000)
_MT_LOWER = np.uint64(0x7fffffff)


def _hash_constants(start: int, mult: int):
    """SeedSequence's running multiplier, (before, after) per step: the
    same sequence for every sample, so it stays a Python int while the
    values are arrays."""
    while True:
        after = (start * mult) & _MASK32
        yield np.uint32(start), np.uint32(after)
        start = after


def _hashmix(values: np.ndarray, const) -> np.ndarray:
    before, after = next(const)
    values = (values ^ before) * after
    return values ^ (values >> _XSHIFT)


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = _MIX_MULT_L * x - _MIX_MULT_R * y
    return result ^ (result >> _XSHIFT)


def sample_seeds(seed: int, epoch: int, positions) -> np.ndarray:
    """The seed of draw ``k`` of ``epoch``, for every ``k`` in ``positions``
    (uint32 array): ``SeedSequence([seed % 2**32, epoch, k])
    .generate_state(1)[0]``, without a Python loop. ``epoch`` and the
    positions must be below 2**32 (one entropy word each)."""
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and (positions.min() < 0 or positions.max() > _MASK32):
        raise ValueError('positions must be in [0, 2**32)')
    if not 0 <= epoch <= _MASK32:
        raise ValueError(f'epoch must be in [0, 2**32); got {epoch}')
    with np.errstate(over='ignore'):
        # the three entropy words, zero-padded to the pool's four
        words = [seed % 2**32, epoch, positions, 0]
        const = _hash_constants(_INIT_A, _MULT_A)
        pool = [
            _hashmix(
                np.broadcast_to(w, positions.shape).astype(np.uint32), const)
            for w in words
        ]
        for src in range(_POOL_SIZE):
            for dst in range(_POOL_SIZE):
                if src != dst:
                    pool[dst] = _mix(pool[dst], _hashmix(pool[src], const))
        # generate_state(1): one word from the first pool entry
        return _hashmix(pool[0], _hash_constants(_INIT_B, _MULT_B))


def _temper(y: np.ndarray) -> np.ndarray:
    y = y ^ (y >> np.uint64(11))
    y = y ^ ((y << np.uint64(7)) & np.uint64(0x9d2c5680))
    y = y ^ ((y << np.uint64(15)) & np.uint64(0xefc60000))
    return y ^ (y >> np.uint64(18))


def _twist(first: np.ndarray, second: np.ndarray,
           far: np.ndarray) -> np.ndarray:
    y = (first & _MT_UPPER) | (second & _MT_LOWER)
    return far ^ (y >> np.uint64(1)) ^ np.where(
        (y & np.uint64(1)).astype(bool), _MT_MATRIX_A, np.uint64(0))


def first_uniforms(seeds) -> np.ndarray:
    """``np.random.seed(s); np.random.rand()`` for every seed (float64),
    without a Python loop over the seeds."""
    key = np.asarray(seeds, dtype=np.uint64)
    if key.size and key.max() > _MASK32:
        raise ValueError('seeds must be in [0, 2**32)')
    keys = {0: key}
    # The first two output words read key[0..2] and key[397..398].
    for i in range(1, _MT_M + 2):
        key = (np.uint64(_MT_INIT_MULT) *
               (key ^
                (key >> np.uint64(30))) + np.uint64(i)) & np.uint64(_MASK32)
        if i in (1, 2, _MT_M, _MT_M + 1):
            keys[i] = key
    word0 = _temper(_twist(keys[0], keys[1], keys[_MT_M]))
    word1 = _temper(_twist(keys[1], keys[2], keys[_MT_M + 1]))
    high = (word0 >> np.uint64(5)).astype(np.float64)
    low = (word1 >> np.uint64(6)).astype(np.float64)
    return (high * 67108864.0 + low) / 9007199254740992.0
