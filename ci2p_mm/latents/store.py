"""The latent store: codec latents of a data set, on disk, checked on read.

CI2P's encoder is frozen, so what it computes from an image never changes
during training. :func:`ci2p_mm.latents.encode` runs it once over a config's
data and writes a *store*; :class:`~ci2p_mm.latents.LatentDataset` reads it
every epoch. A store is a folder (by default
``<data_root>/latents/<codec>-q<q>-<size>``)::

    record.json            format version, codec (zoo name, quality, sha256
                           of g_a's weights), image size, storage, the
                           config that wrote it, and per split: annotation
                           file and its sha256, sample count, views, latent
                           shape
    <split>.npy            [N, V, C, H/16, W/16] (NumPy .npy, memory-mapped);
                           V = 2 (the image and its horizontal flip) for
                           splits whose pipeline flips, else 1
    <split>.labels.npy     [N] int64
    <split>.sources.npy    [N] (size, mtime_ns, sha256) of each image file as
                           encoded: a rewritten image makes the store stale
    <split>.done.<rank>    one JSON line per finished chunk of samples
                           (``{"chunk": i, "bad": {index: reason}}``): a
                           killed encode resumes after the last line
    encode.lock            held by a running encode (``flock``)

A store's folder holds nothing else: an encode refuses to write a store
into a folder that holds other entries (a data root's ``raw-img/``), and
``--overwrite`` deletes only the files above, never the folder.

Storage (``record['storage']``):

* ``'fp16'`` (default): the encoder's float32 output rounded to float16,
  exact to fp16 precision (relative error <= 2**-11). A latent beyond
  float16's range (65504) is refused at encode time (it would be stored as
  Inf): encode with ``'fp32'`` then.
* ``'fp32'``: the encoder's output as it is, twice the bytes.
* ``'quantized'``: the codec's own quantised latent ``round(y)`` as int8
  (values outside [-127, 127] are clipped and counted in the progress log):
  half the bytes of fp16, an approximation (absolute error <= 0.5).

What a store is trusted with, and how it is checked before use: the record
is parsed as JSON data (never executed) and validated field by field; every
array's ``.npy`` header (shape, dtype) must match the record and the file
must be as long as the header says, before it is read; NaN/Inf values are
refused when written and, for each sample read, when read; the annotation
file's sha256 and each image's size and modification time are compared
with the record (a changed file is hashed, and a different hash makes the
store stale). Every refusal names the store and the command that fixes it.
"""
import errno
import functools
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ci2p_mm.models.utils import CI2PEncoder
from ci2p_mm.utils.errors import UserError, listing
from ci2p_mm.utils.io import file_sha256, output_kind, write_text_atomically

#: Version 2 added latent_shape, the sources arrays and fp32 storage.
FORMAT_VERSION = 2
STORAGES = {'fp16': np.float16, 'fp32': np.float32, 'quantized': np.int8}
#: Stored views of each image: as the pipeline gives it, and mirrored.
LATENT_VIEWS = ('original', 'hflip')
#: Values of the quantised latent beyond int8 are clipped (and counted).
QUANTIZED_LIMIT = 127
#: Largest finite float16; fp16 storage refuses latents beyond it.
FP16_MAX = float(np.finfo(np.float16).max)
#: A store's record is a few KiB; a larger file is not one.
MAX_RECORD_BYTES = 1 << 20
#: A progress log holds a line per chunk; a larger file is not one.
MAX_PROGRESS_LOG_BYTES = 64 << 20
#: What a store keeps of each image file it encoded.
SOURCE_DTYPE = np.dtype([('size', '<i8'), ('mtime_ns', '<i8'),
                         ('sha256', 'S32')])
#: The command that (re)writes a store.
ENCODE_TOOL = 'python tools/dataset_converters/encode_latents.py'
#: Names of a split's files but its latents (``<split>.npy``, which is the
#: store's when one of these names the same split).
SPLIT_FILE = re.compile(r'(.+)\.(labels\.npy|sources\.npy|done\.\d+)$')


class LatentStoreError(UserError, RuntimeError):
    """A latent store that is missing, damaged, stale or for another
    model."""


class LatentConfigError(UserError, ValueError):
    """A config whose data cannot be stored as latents."""


# ---- identities --------------------------------------------------------


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict: sorted keys, dtypes, shapes and
    bytes. Identical weights give the same hash on any device."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f'{key}|{tensor.dtype}|{list(tensor.shape)}|'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def codec_identity(encoder: CI2PEncoder) -> dict:
    """What a store records of the :class:`CI2PEncoder` that wrote it."""
    return dict(
        name=encoder.codec,
        quality=int(encoder.quality),
        weights_sha256=state_dict_sha256(encoder.encoder))


def find_ci2p_encoders(model: nn.Module) -> List[CI2PEncoder]:
    return [m for m in model.modules() if isinstance(m, CI2PEncoder)]


def default_store_name(codec: str,
                       quality: int,
                       img_size: Sequence[int],
                       storage: str = 'fp16') -> str:
    """``<codec>-q<quality>-<size>[-<storage>]``, e.g.
    ``bmshj2018-factorized-q5-256``."""
    h, w = img_size
    size = f'{h}' if h == w else f'{h}x{w}'
    suffix = '' if storage == 'fp16' else f'-{storage}'
    return f'{codec}-q{quality}-{size}{suffix}'


def split_key(dataset_cfg: dict) -> str:
    """A split's name in the store: the dataset's ``split``, else its
    annotation file's name."""
    split = dataset_cfg.get('split')
    if split:
        return str(split)
    ann = dataset_cfg.get('ann_file') or ''
    if not ann:
        raise LatentConfigError(
            f'Cannot name the split of {dataset_cfg.get("type")}: give it '
            f'split= or ann_file=.')
    return osp.splitext(osp.basename(ann))[0]


def source_stamp(path: Optional[str], with_hash: bool = True) -> tuple:
    """``(size, mtime_ns, sha256)`` of an image file as a store records
    it; all zero for no path or what is not a regular file (nothing is
    read from a FIFO or a device). ``with_hash=False`` leaves the hash
    zero."""
    if not path or not osp.isfile(path):
        return (0, 0, b'')
    info = os.stat(path)
    digest = bytes.fromhex(file_sha256(path)) if with_hash else b''
    return (info.st_size, info.st_mtime_ns, digest)


def _nearest_existing(path: str) -> str:
    while not osp.exists(path) and osp.dirname(path) != path:
        path = osp.dirname(path)
    return path


def _describe(codec: dict, img_size) -> str:
    return (f'{codec["name"]} quality {codec["quality"]}, encoder weights '
            f'sha256 {codec["weights_sha256"][:12]}..., images '
            f'{img_size[0]}x{img_size[1]}')


# ---- the record --------------------------------------------------------


def _positive_ints(value, length: int) -> bool:
    return (isinstance(value, list) and len(value) == length
            and all(isinstance(v, int) and v > 0 for v in value))


def _record_problem(record) -> Optional[str]:
    """``'field: problem'`` for the first field of a store record that is
    missing or of the wrong type, or None."""
    if not isinstance(record, dict):
        return 'top level: not a JSON object'
    codec, size, storage, chunk, splits = map(
        record.get, ('codec', 'img_size', 'storage', 'chunk_size', 'splits'))
    if not (isinstance(codec, dict) and isinstance(codec.get('name'), str)
            and isinstance(codec.get('quality'), int)
            and isinstance(codec.get('weights_sha256'), str)):
        return 'codec: needs name, quality and weights_sha256'
    if not _positive_ints(size, 2):
        return f'img_size: {size!r} is not [H, W]'
    if not (isinstance(storage, str) and storage in STORAGES):
        return f'storage: {storage!r} is not one of {sorted(STORAGES)}'
    if not (isinstance(chunk, int) and chunk > 0):
        return f'chunk_size: {chunk!r} is not a positive integer'
    if not isinstance(splits, dict):
        return 'splits: not an object'
    for name, split in splits.items():
        if not isinstance(split, dict):
            return f'splits.{name}: not an object'
        num, views, shape = map(split.get,
                                ('num_samples', 'views', 'latent_shape'))
        for key, valid in (('num_samples', isinstance(num, int) and num >= 0),
                           ('views', isinstance(views, list) and views
                            and views == list(LATENT_VIEWS[:len(views)])),
                           ('latent_shape', _positive_ints(shape, 3)),
                           ('ann_file', isinstance(split.get('ann_file'),
                                                   str)),
                           ('ann_sha256',
                            isinstance(split.get('ann_sha256'), str))):
            if not valid:
                return f'splits.{name}.{key}: {split.get(key)!r}'
    return None


# ---- the store ---------------------------------------------------------


class LatentStore:
    """A latent store folder: its record, arrays and progress logs.

    Reading maps the arrays (``mmap_mode='r'``) once per process, so
    DataLoader workers share the page cache instead of copies; each array
    is checked against the record before it is read.
    """

    def __init__(self, root: str):
        self.root = osp.abspath(root)
        self.record_path = osp.join(self.root, 'record.json')
        self.lock_path = osp.join(self.root, 'encode.lock')
        self._arrays: Dict[str, np.ndarray] = {}

    # record ------------------------------------------------------------
    def exists(self) -> bool:
        """Whether there is a record (of any kind: reading checks it)."""
        return osp.lexists(self.record_path)

    @functools.cached_property
    def record(self) -> dict:
        """``record.json``: parsed as JSON data (never executed), every
        field a store needs checked."""
        if not self.exists():
            raise LatentStoreError(
                f'No latent store at {self.root} (no record.json). Write it '
                f'with `{ENCODE_TOOL} CONFIG` (see docs/latents.md).')
        data = self._read_small(self.record_path, MAX_RECORD_BYTES,
                                'a store record is a few KiB')
        try:
            record = json.loads(data.decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as err:
            raise LatentStoreError(
                f'{self.record_path} is not valid JSON ({err}); the store '
                f'cannot be used. {self.reencode_advice()}') from None
        version = record.get('format_version') if isinstance(
            record, dict) else FORMAT_VERSION
        if version != FORMAT_VERSION:
            raise LatentStoreError(
                f'The latent store {self.root} has format version '
                f'{version!r}; this version of CI2P-MM reads version '
                f'{FORMAT_VERSION} (which also records each image\'s content '
                f'hash). Re-encode with {ENCODE_TOOL} '
                f'{record.get("config", "CONFIG")} --overwrite.')
        problem = _record_problem(record)
        if problem:
            raise LatentStoreError(
                f'{self.record_path} is not a valid latent store record '
                f'({problem}). {self.reencode_advice()}')
        return record

    def write_record(self, record: dict) -> None:
        write_text_atomically(self.record_path, json.dumps(record, indent=2))
        self.record = record

    def forget_record(self) -> None:
        """Read the record from disk again next time (another process
        wrote it)."""
        self.__dict__.pop('record', None)
        self._arrays.clear()

    def reencode_advice(self, split: Optional[str] = None) -> str:
        """The command that rewrites this store, with the config that
        wrote it when the record names one."""
        config = self.__dict__.get('record', {}).get('config') or 'CONFIG'
        only = f' --splits {split}' if split else ''
        return (f'Re-encode with `{ENCODE_TOOL} {config} --out {self.root}'
                f'{only} --overwrite`.')

    def damaged_sample(self,
                       split: str,
                       index: int,
                       image: Optional[str] = None) -> LatentStoreError:
        """A stored sample that holds NaN/Inf values, as one line."""
        image = f' ({image})' if image else ''
        return LatentStoreError(
            f'Sample {index}{image} of the latent store {self.root}, split '
            f'{split!r} holds NaN/Inf values: the store is damaged. '
            f'{self.reencode_advice(split)}')

    def __getstate__(self):  # to DataLoader workers: no mapped arrays
        return dict(self.__dict__, _arrays={})

    # paths -------------------------------------------------------------
    def array_path(self, split: str) -> str:
        return osp.join(self.root, f'{split}.npy')

    def labels_path(self, split: str) -> str:
        return osp.join(self.root, f'{split}.labels.npy')

    def sources_path(self, split: str) -> str:
        return osp.join(self.root, f'{split}.sources.npy')

    def done_log(self, split: str, rank) -> str:
        return osp.join(self.root, f'{split}.done.{rank}')

    # the folder --------------------------------------------------------
    def refuse_foreign_entries(self, action: str) -> None:
        """Refuse a folder that holds more than the store's own files
        (known by name, see this module), naming what: deleting or mixing
        in others' files is never right."""
        if osp.lexists(self.root) and not osp.isdir(self.root):
            raise LatentStoreError(f'{self.root} is a file, not a folder: a '
                                   f'latent store is one. Pass another --out.')
        names = sorted(os.listdir(self.root)) if osp.isdir(self.root) else []
        splits = {m.group(1) for m in map(SPLIT_FILE.match, names) if m}
        # record.json.*: the atomic writer's temporaries of the record.
        other = [
            n for n in names if osp.isdir(osp.join(self.root, n))
            or not (n in ('record.json', 'encode.lock') or SPLIT_FILE.match(n)
                    or n.startswith('record.json.') or
                    (n.endswith('.npy') and n[:-4] in splits))
        ]
        if other:
            raise LatentStoreError(
                f'{self.root} holds {len(other)} entries that are not a '
                f'latent store\'s ({listing(other)}): refusing to {action}. '
                f'A store needs a folder of its own: pass another --out (the '
                f'default is <data_root>/latents/<codec>-q<quality>-<size>), '
                f'or move those entries out.')

    def remove_files(self) -> None:
        """Delete the store's own files, not its folder, and not
        ``encode.lock`` (held by the encode that replaces the store)."""
        self.refuse_foreign_entries('delete the store in it')
        for name in os.listdir(self.root) if osp.isdir(self.root) else []:
            if name != 'encode.lock':
                os.remove(osp.join(self.root, name))
        self.forget_record()

    def writable(self) -> bool:
        """Whether this process may write the store's folder (before it
        exists: the nearest folder above); False on a read-only mount."""
        return os.access(_nearest_existing(self.root), os.W_OK)

    def cannot_write(self, err: OSError, need: int = 0) -> LatentStoreError:
        """A failed write into the store as one line: a full disk says how
        much is needed and free, anything else what failed."""
        name = osp.basename(err.filename or self.root)
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            return LatentStoreError(
                f'Cannot write {name} in the latent store {self.root} '
                f'({err.strerror}). Encode into a writable folder (--out); '
                f'a re-run resumes.')
        free = shutil.disk_usage(_nearest_existing(self.root)).free / 1e9
        needs = f'needs {need / 1e9:.3g} GB' if need else 'was not written'
        return LatentStoreError(
            f'No space left for the latent store {self.root}: {name} {needs}, '
            f'{free:.3g} GB free on {self.root}. Free space or pass another '
            f'--out; a re-run resumes where this one stopped.')

    def reserve_blocks(self, path: str) -> None:
        """Allocate a memory-mapped file's blocks before it is written
        through the mapping, where a full disk kills the process (SIGBUS)
        instead of raising: here it is an error that says so."""
        info = os.stat(path)
        need = max(0, info.st_size - info.st_blocks * 512)
        try:
            if need > shutil.disk_usage(self.root).free:
                raise OSError(errno.ENOSPC, 'no space', path)
            if need and hasattr(os, 'posix_fallocate'):
                with open(path, 'r+b') as f:
                    os.posix_fallocate(f.fileno(), 0, info.st_size)
        except OSError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return  # a file system that cannot reserve: write as before
            err.filename = err.filename or path
            raise self.cannot_write(err, need) from None

    def create_split(self, split: str, split_record: dict,
                     labels: Sequence[int]) -> None:
        """(Re)create a split's files, zero-filled and with their blocks
        reserved (a full disk shows now), and add the split to the
        record."""
        for path in [self.array_path(split),
                     self.sources_path(split)] + glob.glob(
                         self.done_log(split, '*')):
            if osp.lexists(path):
                os.remove(path)
        # Labels first: they mark <split>.npy as the store's own file.
        np.save(self.labels_path(split), np.asarray(labels, dtype=np.int64))
        self.record['splits'][split] = split_record  # on disk: after files
        arrays = ((self.array_path(split), STORAGES[self.record['storage']],
                   self.array_shape(split)),
                  (self.sources_path(split), SOURCE_DTYPE,
                   (split_record['num_samples'], )))
        for path, dtype, shape in arrays:
            np.lib.format.open_memmap(
                path, mode='w+', dtype=dtype, shape=shape).flush()
            self.reserve_blocks(path)
        self.write_record(self.record)

    # reading files -----------------------------------------------------
    def _file_size(self, path: str, what: str) -> int:
        """The size of one of the store's files; what is missing or not a
        regular file is refused (opening a FIFO would block forever)."""
        kind = output_kind(path)  # None: a regular file, or nothing
        if kind or not osp.isfile(path):
            raise LatentStoreError(
                (f'{path} in the latent store {self.root} is {kind}, not a '
                 f'regular file; refusing to read it.'
                 if kind else f'The latent store {self.root} has no {what} '
                 f'{osp.basename(path)}: it is incomplete.') + ' ' +
                self.reencode_advice())
        return osp.getsize(path)

    def _read_small(self,
                    path: str,
                    limit: int,
                    expected: str,
                    split: Optional[str] = None) -> bytes:
        """A small file of the store (record, progress log), read whole
        unless it is larger than ``limit``."""
        size = self._file_size(path, osp.basename(path))
        if size > limit:
            raise LatentStoreError(
                f'{path} is {size} bytes; {expected} (at most {limit}). It '
                f'is not one. {self.reencode_advice(split)}')
        with open(path, 'rb') as f:
            return f.read(limit + 1)

    def _mapped(self,
                path: str,
                shape: tuple,
                dtype,
                what: str,
                mode: str = 'r') -> np.ndarray:
        """``path`` memory-mapped by NumPy's ``open_memmap`` (a literal-only
        header parser, no pickled objects, a file shorter than its header
        declares refused), checked to hold ``shape`` and ``dtype``."""
        size = self._file_size(path, what)
        where = f'{path} ({what} of the latent store {self.root})'
        try:
            array = np.lib.format.open_memmap(path, mode=mode)
        except (ValueError, OSError) as err:
            raise LatentStoreError(
                f'{where}, {size} bytes, cannot be mapped as a .npy array '
                f'({err}): a file cut short (a full disk, an interrupted '
                f'copy) or not a plain array. {self.reencode_advice()}'
            ) from None
        order = '' if array.flags.c_contiguous else ' in Fortran order'
        if array.shape != tuple(shape) or array.dtype != dtype or order:
            raise LatentStoreError(
                f'{where} holds {array.dtype} {list(array.shape)}{order}, but '
                f'record.json says {np.dtype(dtype)} {list(shape)}: the store '
                f'is damaged or mixes two encodes. {self.reencode_advice()}')
        if mode == 'r+':
            self.reserve_blocks(path)
        return array

    # arrays ------------------------------------------------------------
    def split_record(self, split: str) -> dict:
        splits = self.record['splits']
        if split not in splits:
            raise LatentStoreError(
                f'The latent store {self.root} has no split {split!r} (it '
                f'has {sorted(splits)}). Encode it with {ENCODE_TOOL} on a '
                f'config that lists it.')
        return splits[split]

    def array_shape(self, split: str) -> tuple:
        rec = self.split_record(split)
        return (rec['num_samples'], len(rec['views']), *rec['latent_shape'])

    def array(self, split: str, mode: str = 'r') -> np.ndarray:
        """``[N, V, C, h, w]`` latents, checked and memory-mapped (read-only
        ones once per process; ``mode='r+'`` to write)."""
        if mode == 'r' and split in self._arrays:
            return self._arrays[split]
        array = self._mapped(
            self.array_path(split), self.array_shape(split),
            STORAGES[self.record['storage']], 'latents', mode)
        if mode == 'r':
            self._arrays[split] = array
        return array

    def labels(self, split: str) -> np.ndarray:
        n = self.split_record(split)['num_samples']
        return np.array(
            self._mapped(self.labels_path(split), (n, ), np.int64, 'labels'))

    def sources(self, split: str, mode: str = 'r') -> np.ndarray:
        n = self.split_record(split)['num_samples']
        return self._mapped(
            self.sources_path(split), (n, ), SOURCE_DTYPE, 'image records',
            mode)

    # progress ----------------------------------------------------------
    def progress(self, split: str) -> Tuple[set, Dict[int, str], int]:
        """Finished chunks, the bad samples found in them and how many
        values were clipped to int8 in them, from every rank's log (a line
        cut by a kill is ignored)."""
        done, bad, clipped = set(), {}, 0
        for path in sorted(glob.glob(self.done_log(split, '*'))):
            data = self._read_small(
                path, MAX_PROGRESS_LOG_BYTES,
                'a progress log holds one short line per chunk', split)
            for line in data.split(b'\n'):
                try:
                    entry = json.loads(line)
                    chunk = int(entry['chunk'])
                    found = {int(k): str(v) for k, v in entry['bad'].items()}
                    chunk_clipped = int(entry.get('clipped', 0))
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue  # cut by a kill: the chunk is encoded again
                done.add(chunk)
                bad.update(found)
                clipped += chunk_clipped
        return done, bad, clipped

    def num_chunks(self, split: str) -> int:
        n = self.split_record(split)['num_samples']
        return -(-n // self.record['chunk_size'])

    def check_complete(self, split: str) -> Dict[int, str]:
        """Bad samples of a fully encoded split; raise if it is not."""
        done, bad, _ = self.progress(split)
        total = self.num_chunks(split)
        if len(done & set(range(total))) < total:
            raise LatentStoreError(
                f'The latent store {self.root} is incomplete: split '
                f'{split!r} has {len(done)} of {total} chunks encoded (a run '
                f'was stopped). Run {ENCODE_TOOL} with the same config '
                f'again: it resumes where it stopped.')
        return bad

    # freshness ---------------------------------------------------------
    def check_annotations(self, split: str, ann_file: str) -> None:
        """Refuse a split whose annotation file changed since encoding."""
        recorded = self.split_record(split)
        if not osp.isfile(ann_file):
            raise LatentStoreError(
                f'Annotation file {ann_file} (split {split!r}) not found.')
        current = file_sha256(ann_file)
        if current != recorded['ann_sha256']:
            raise LatentStoreError(
                f'The latent store {self.root} is stale: split {split!r} was '
                f'encoded from {recorded["ann_file"]} (sha256 '
                f'{recorded["ann_sha256"][:12]}...), and {ann_file} has '
                f'changed since (sha256 {current[:12]}...). Restore the '
                f'annotation file, or {self.reencode_advice(split)}')

    def check_images(self,
                     split: str,
                     image_paths: Sequence[str],
                     hash_all: bool = False) -> List[str]:
        """Refuse a split whose images changed since encoding; return the
        images that are gone (their latents stay valid: they are what
        those images gave).

        An image whose size or modification time differs from the record
        is hashed, and refused if its content differs; ``hash_all`` hashes
        every image (catches a rewrite that kept size and time).
        """
        changed, missing = [], []
        stamps = self.sources(split).tolist()
        for path, (size, mtime, digest) in zip(image_paths, stamps):
            if not path or not digest:
                continue  # not decodable when encoded: nothing to compare
            now = source_stamp(path, with_hash=False)[:2]
            if now == (0, 0):  # gone, or no longer a regular file
                (changed if osp.lexists(path) else missing).append(path)
            elif hash_all or now != (size, mtime):
                # NumPy's 'S32' drops trailing zero bytes of a stored digest.
                if source_stamp(path)[2].rstrip(b'\0') != digest:
                    changed.append(path)
        if changed:
            raise LatentStoreError(
                f'The latent store {self.root} is stale: {len(changed)} '
                f'image(s) of split {split!r} changed since they were '
                f'encoded ({listing(changed)}), so their stored latents are '
                f'not what the encoder gives now. '
                f'{self.reencode_advice(split)}')
        return missing

    # the model ---------------------------------------------------------
    def check_model(self, model: nn.Module) -> None:
        """Refuse a model whose codec or image size is not the store's."""
        encoders = find_ci2p_encoders(model)
        if not encoders:
            raise LatentStoreError(
                f'The model has no CI2P encoder, but its data are codec '
                f'latents from {self.root}.')
        stored = self.record['codec']
        stored_size = tuple(self.record['img_size'])
        size = getattr(getattr(model, 'backbone', model), 'img_size', None)
        size = stored_size if size is None else tuple(int(s) for s in size)
        for encoder in encoders:
            if not encoder.latent_input:
                raise LatentStoreError(
                    'The data are codec latents but the model encodes '
                    'images: set model.backbone.patch_cfg.latent_input=True '
                    '(as configs/*_latents.py do).')
            built = codec_identity(encoder)
            if built != stored or size != stored_size:
                raise LatentStoreError(
                    f'The latent store {self.root} was written by another '
                    f'codec than this model\'s, so its latents are not what '
                    f'this model\'s encoder computes. Store: '
                    f'{_describe(stored, stored_size)}. Model: '
                    f'{_describe(built, size)}. Encode the data with this '
                    f'model\'s config ({ENCODE_TOOL} CONFIG), or point the '
                    f'dataset at the matching store.')
