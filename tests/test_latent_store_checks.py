"""A latent store that lies: every damage gives a named refusal.

The store is written here (the toy Animals-10's val split at 64 px, a codec
file the test writes), then damaged the way a full disk, a copy gone wrong,
a broken codec or an attacker would, and read through ``LatentDataset`` as
training and testing do. Each refusal must name the store and the command
that rewrites it; nothing may hang, run code or read unbounded data.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_ARCH
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS
from PIL import Image

from ci2p_mm.codec import build_codec
from ci2p_mm.latents import (LatentStore, LatentStoreError,
                             build_device_latent_loader, encode)
from ci2p_mm.utils import read_config
from ci2p_mm.utils.io import load_torch_file, save_atomic

SIZE = 64
PIPELINE = ("[dict(type='SafeLoadImageFromFile'),"
            "dict(type='Resize',scale=(64,64)),"
            "dict(type='PackInputs')]")


def write_config(directory, data_root, codec_file, name='latent.py'):
    path = osp.join(str(directory), name)
    with open(path, 'w') as f:
        f.write(
            f"_base_ = "
            f"[{osp.join(REPO, 'configs/ci2p_vit_animals10_latents.py')!r}]\n"
            f"model = dict(backbone=dict(arch={TINY_ARCH}, img_size={SIZE}, "
            f"patch_cfg=dict(pretrained={codec_file!r})), "
            f"head=dict(in_channels=64))\n"
            f"train_dataloader = dict(batch_size=8, num_workers=0, "
            f"dataset=dict(store='latents/s', source=dict("
            f"data_root={data_root!r}, pipeline={PIPELINE})))\n"
            f"val_dataloader = dict(batch_size=8, num_workers=0, dataset=dict("
            f"store='latents/s', source=dict(data_root={data_root!r}, "
            f"pipeline={PIPELINE})))\n")
    return path


def val_dataset(config, **overrides):
    init_default_scope('mmpretrain')
    cfg = read_config(config).val_dataloader.dataset
    cfg.update(overrides)
    return DATASETS.build(cfg)


@pytest.fixture(scope='module')
def codec_file(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('store_codec') / 'codec.pth')
    save_atomic(build_codec('bmshj2018-factorized', 5).state_dict(), path)
    return path


@pytest.fixture(scope='module')
def pristine(toy_animals10, codec_file, tmp_path_factory):
    """A copy of the toy data with its val split encoded once."""
    root = str(tmp_path_factory.mktemp('pristine') / 'data')
    shutil.copytree(toy_animals10, root)
    config = write_config(osp.dirname(root), root, codec_file)
    store = encode(
        read_config(config),
        splits=['val'],
        num_workers=0,
        progress=False,
        chunk_size=8)
    return root, store


@pytest.fixture
def store(pristine, codec_file, tmp_path):
    """(config, store folder) of a fresh copy that a test may damage."""
    root = str(tmp_path / 'data')
    shutil.copytree(pristine[0], root)  # copy2: times kept
    config = write_config(tmp_path, root, codec_file)
    return config, osp.join(root, 'latents', 's')


def refused(config, *patterns, **overrides):
    with pytest.raises(LatentStoreError) as err:
        dataset = val_dataset(config, **overrides)
        for i in range(len(dataset)):
            dataset[i]
    message = str(err.value)
    for pattern in patterns:
        assert pattern in message, message
    return message


def rewrite_npy(path, array):
    os.remove(path)
    np.save(path, array)


def test_an_intact_store_reads(store):
    config, _ = store
    dataset = val_dataset(config)
    assert len(dataset) == 20
    assert dataset[0]['inputs'].shape == (192, 4, 4)


def test_non_finite_values_are_refused_when_read(store):
    config, root = store
    array = np.load(osp.join(root, 'val.npy'), mmap_mode='r+')
    array[3, 0, 5, 1, 1] = np.nan
    array.flush()
    del array
    message = refused(config, 'Sample 3', 'NaN/Inf', root, '--overwrite')
    assert 'encode_latents.py' in message
    # The device-resident loader checks the whole store once, with the
    # same message.
    with pytest.raises(LatentStoreError) as err:
        build_device_latent_loader(read_config(config).val_dataloader, 'cpu')
    for pattern in ('Sample 3 of the latent store', 'NaN/Inf', root,
                    '--splits val --overwrite'):
        assert pattern in str(err.value), err.value


def test_an_array_that_contradicts_the_record_is_refused(store):
    config, root = store
    path = osp.join(root, 'val.npy')
    good = np.load(path)
    rewrite_npy(path, good[:, :, :, :2, :2])  # another latent size
    refused(config, 'record.json says', 'float16 [20, 1, 192, 4, 4]', root)
    rewrite_npy(path, good[:15])  # too few rows: not an IndexError
    refused(config, 'float16 [15, 1, 192, 4, 4]', root)
    rewrite_npy(path, good.astype(np.float32))
    refused(config, 'float32', root)


def test_a_truncated_array_is_refused(store):
    config, root = store
    path = osp.join(root, 'val.npy')
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size - 1000)
    refused(config, 'cut short', str(size - 1000), root)


def test_an_object_array_is_never_unpickled(store, tmp_path):
    config, root = store
    marker = tmp_path / 'ran'
    from _hostile import CreatesMarker
    obj = np.empty(20, dtype=object)
    obj[0] = CreatesMarker(marker)
    with open(osp.join(root, 'val.labels.npy'), 'wb') as f:
        np.lib.format.write_array(f, obj, allow_pickle=True)
    refused(config, 'val.labels.npy', 'object', root)
    assert not marker.exists()


@pytest.mark.parametrize(
    'damage,pattern', [
        (lambda p: open(p, 'w').write('{"format_version": 2, "codec"'),
         'not valid JSON'),
        (lambda p: open(p, 'w').write(json.dumps([1, 2])),
         'not a JSON object'),
        (lambda p: open(p, 'w').write(' ' * (2 << 20)), 'a few KiB'),
        (lambda p: (json.dump(
            dict(json.load(open(p)), format_version=1), open(p + '.x', 'w')),
                    os.replace(p + '.x', p)), 'format version 1'),
        (lambda p: (json.dump(
            dict(json.load(open(p)), storage='pickle'), open(p + '.x', 'w')),
                    os.replace(p + '.x', p)), "storage: 'pickle'"),
    ],
    ids=['cut', 'list', 'huge', 'old-version', 'bad-storage'])
def test_a_broken_record_is_named(store, damage, pattern):
    config, root = store
    damage(osp.join(root, 'record.json'))
    refused(config, pattern, root)


def test_fifos_are_refused_without_hanging(store):
    """A FIFO under a store's name would block a plain open() forever."""
    config, root = store
    for name in ('val.npy', 'record.json'):
        path = osp.join(root, name)
        saved = path + '.saved'
        os.replace(path, saved)
        os.mkfifo(path)
        start = time.monotonic()
        refused(config, 'not a regular file', name)
        assert time.monotonic() - start < 60
        os.remove(path)
        os.replace(saved, path)


def test_progress_counts_clipped_values_and_bounds_its_logs(store):
    """The progress logs give the finished chunks, their bad samples and
    the values clipped to int8 (what --latent-storage reports); a line cut
    by a kill counts nothing, and an oversized log is refused unread."""
    _, root = store
    log = osp.join(root, 'val.done.0')
    with open(log) as f:
        entries = [json.loads(line) for line in f]
    with open(log, 'w') as f:
        for entry in entries:
            f.write(json.dumps(dict(entry, clipped=3)) + '\n')
        f.write('{"chunk": 7, "bad": {}, "clipped": 5')  # cut by a kill
    done, bad, clipped = LatentStore(root).progress('val')
    assert done == {0, 1, 2} and bad == {}
    assert clipped == 3 * len(entries) == 9
    with open(log, 'r+') as f:
        f.truncate((64 << 20) + 1)  # sparse: no disk used
    with pytest.raises(LatentStoreError, match='one short line per chunk'):
        LatentStore(root).progress('val')


def test_changed_images_make_the_store_stale(store):
    config, root = store
    data_root = osp.dirname(osp.dirname(root))
    with open(osp.join(data_root, 'meta', 'val.txt')) as f:
        image = osp.join(data_root, f.readline().split()[0])
    info = os.stat(image)

    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert len(val_dataset(config)) == 20  # touched, same content: fresh

    pixels = np.asarray(Image.open(image).convert('RGB')).copy()
    pixels[:8] = 255 - pixels[:8]
    Image.fromarray(pixels).save(image, format=Image.open(image).format)
    refused(config, 'stale', osp.basename(image), 'changed since', root)


def test_hash_check_catches_a_rewrite_that_kept_size_and_time(store):
    config, root = store
    data_root = osp.dirname(osp.dirname(root))
    with open(osp.join(data_root, 'meta', 'val.txt')) as f:
        image = osp.join(data_root, f.readline().split()[0])
    info = os.stat(image)
    with open(image, 'r+b') as f:  # same length, other bytes at the end
        f.seek(-4, os.SEEK_END)
        tail = f.read(4)
        f.seek(-4, os.SEEK_END)
        f.write(bytes(255 - b for b in tail))
    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert len(val_dataset(config)) == 20  # size and time as recorded
    refused(config, 'stale', osp.basename(image), root, check_sources='hash')


def test_deleted_images_keep_their_latents(store):
    config, root = store
    data_root = osp.dirname(osp.dirname(root))
    with open(osp.join(data_root, 'meta', 'val.txt')) as f:
        image = osp.join(data_root, f.readline().split()[0])
    os.remove(image)
    dataset = val_dataset(config)
    assert len(dataset) == 20 and dataset[0]['inputs'].shape == (192, 4, 4)


@pytest.mark.slow  # end to end (pytest.ini)
def test_latents_beyond_fp16_are_refused_then_stored_as_fp32(
        pristine, codec_file, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(
        pristine[0], root, ignore=shutil.ignore_patterns('latents'))
    state = load_torch_file(codec_file)
    last = [
        k for k in state if k.startswith('g_a.') and k.endswith('.weight')
    ][-1]
    state[last] = state[last] * 1e6  # latents far beyond 65504
    loud = str(tmp_path / 'loud_codec.pth')
    save_atomic(state, loud)
    config = write_config(tmp_path, root, loud)
    with pytest.raises(
            LatentStoreError, match=r"beyond float16's range.*--storage fp32"):
        encode(
            read_config(config), splits=['val'], num_workers=0, progress=False)
    out = encode(
        read_config(config),
        splits=['val'],
        num_workers=0,
        progress=False,
        storage='fp32',
        overwrite=True,
        out=osp.join(root, 'latents', 's'))
    assert LatentStore(out).record['storage'] == 'fp32'
    latent = val_dataset(config)[0]['inputs']
    assert latent.dtype == torch.float32 and latent.abs().max() > 65504


def test_a_broken_codec_stores_nothing_non_finite(pristine, codec_file,
                                                  tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(
        pristine[0], root, ignore=shutil.ignore_patterns('latents'))
    state = load_torch_file(codec_file)
    first = [k for k in state if k.startswith('g_a.')][0]
    state[first] = torch.full_like(state[first], float('nan'))
    broken = str(tmp_path / 'nan_codec.pth')
    save_atomic(state, broken)
    config = write_config(tmp_path, root, broken)
    with pytest.raises(LatentStoreError, match='NaN/Inf latents'):
        encode(
            read_config(config), splits=['val'], num_workers=0, progress=False)


def test_splits_of_different_sizes_are_refused_before_writing(
        pristine, codec_file, tmp_path):
    """Was: the second split's size read as "another setting"; with
    --overwrite it replaced the first split's files, whose encode then
    failed."""
    root = str(tmp_path / 'data')
    shutil.copytree(
        pristine[0], root, ignore=shutil.ignore_patterns('latents'))
    config = write_config(tmp_path, root, codec_file)
    cfg = read_config(config)
    cfg.train_dataloader.dataset.source.pipeline[1].scale = (96, 96)
    for overwrite in (False, True):
        with pytest.raises(LatentStoreError) as err:
            encode(cfg, num_workers=0, progress=False, overwrite=overwrite)
        assert 'different sizes' in str(err.value), err.value
        assert "'train': (96, 96)" in str(err.value), err.value
        assert "--splits SPLIT --out DIR" in str(err.value), err.value
    assert not osp.exists(osp.join(root, 'latents'))


def test_a_split_the_config_lacks_is_named_before_the_codec_loads(
        pristine, tmp_path):
    """--splits bogus: the codec weights were loaded (offline: a failed
    download) before the split was looked for."""
    missing_codec = str(tmp_path / 'no_codec.pth')
    cfg = read_config(write_config(tmp_path, pristine[0], missing_codec))
    with pytest.raises(LatentStoreError) as err:
        encode(cfg, splits=['train', 'bogus'], num_workers=0, progress=False)
    assert str(err.value).endswith("has no split(s) ['bogus']; it has "
                                   "['train', 'val'].")


@pytest.mark.slow
def test_a_second_encode_of_the_same_store_is_refused(store):
    config, root = store
    holder = subprocess.Popen([
        sys.executable, '-c', 'import sys, time\n'
        'from ci2p_mm.utils.locks import ProcessLock\n'
        'held = ProcessLock(sys.argv[1]).acquire()\n'
        'print("held", flush=True)\n'
        'time.sleep(600)\n',
        osp.join(root, 'encode.lock')
    ],
                              cwd=REPO,
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(
                LatentStoreError,
                match=f'Another encode is writing .*pid '
                f'{holder.pid}'):
            encode(
                read_config(config),
                splits=['val'],
                num_workers=0,
                progress=False,
                chunk_size=8)
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: the lock file it left does not block.
    out = encode(
        read_config(config),
        splits=['val'],
        num_workers=0,
        progress=False,
        chunk_size=8,
        overwrite=True)
    LatentStore(out).check_complete('val')


# ---- issue 27: what --overwrite deletes, a full disk, a read-only store --


def encode_val(config, **options):
    return encode(
        read_config(config),
        splits=['val'],
        num_workers=0,
        progress=False,
        chunk_size=8,
        **options)


def folder_state(root):
    """Every file under ``root`` with its bytes (but the lock files, which
    name their last holder)."""
    state = {}
    for folder, _, files in os.walk(root):
        for name in set(files) - {'encode.lock'}:
            with open(osp.join(folder, name), 'rb') as f:
                state[osp.relpath(osp.join(folder, name), root)] = f.read()
    return state


def test_overwrite_deletes_only_the_stores_own_files(store):
    """Was: shutil.rmtree(--out): a store written into the data root and
    re-encoded took raw-img/ and meta/ with it, exit 0."""
    config, root = store
    data_root = osp.dirname(osp.dirname(root))
    before = folder_state(data_root)
    # The case: --out is the data root.
    with pytest.raises(LatentStoreError) as err:
        encode_val(config, out=data_root, overwrite=True, storage='fp32')
    assert str(err.value) == (
        f'{data_root} holds 3 entries that are not a latent store\'s ('
        f'latents, meta, raw-img): refusing to write a latent store into '
        f'it. A store needs a folder of its own: pass another --out (the '
        f'default is <data_root>/latents/<codec>-q<quality>-<size>), or '
        f'move those entries out.')
    # A store folder that others' files got into; another tool's record.
    os.mkdir(osp.join(root, 'raw-img'))
    with open(osp.join(root, 'notes.txt'), 'w') as f:
        f.write('mine\n')
    other = osp.join(osp.dirname(root), 'other-tool')
    os.mkdir(other)
    for name in ('record.json', 'features.npy'):
        with open(osp.join(other, name), 'w') as f:
            f.write('{"tool": "other"}\n')
    for out, named in ((root, 'notes.txt, raw-img'), (other, 'features.npy')):
        with pytest.raises(
                LatentStoreError,
                match='refusing to delete the store in it') as err:
            encode_val(config, out=out, overwrite=True, storage='fp32')
        assert f'({named})' in str(err.value)
    after = folder_state(data_root)
    assert {k: after[k] for k in before} == before  # nothing replaced
    # Once only the store's files are left, --overwrite replaces them.
    os.remove(osp.join(root, 'notes.txt'))
    os.rmdir(osp.join(root, 'raw-img'))
    encode_val(config, out=root, overwrite=True, storage='fp32')
    assert LatentStore(root).record['storage'] == 'fp32'
    assert sorted(os.listdir(root)) == [
        'encode.lock', 'record.json', 'val.done.0', 'val.labels.npy',
        'val.npy', 'val.sources.npy'
    ]
    with pytest.raises(LatentStoreError, match='is a file, not a folder'):
        encode_val(config, out=osp.join(root, 'val.npy'))


def test_a_full_disk_is_named_before_the_store_is_written(
        pristine, codec_file, tmp_path, monkeypatch):
    """Was: SIGBUS (exit 135), no message, when the memory-mapped latents
    were written on a full disk."""
    import collections
    import errno
    root = str(tmp_path / 'data')
    shutil.copytree(
        pristine[0], root, ignore=shutil.ignore_patterns('latents'))
    config = write_config(tmp_path, root, codec_file)
    out = osp.join(root, 'latents', 's')
    usage = collections.namedtuple('usage', 'total used free')
    with monkeypatch.context() as patch:
        patch.setattr(shutil, 'disk_usage', lambda path: usage(1, 1, 4096))
        with pytest.raises(LatentStoreError) as err:
            encode_val(config)
    assert str(err.value) == (
        f'No space left for the latent store {out}: val.npy needs 0.000115 '
        f'GB, 4.1e-06 GB free on {out}. Free space or pass another --out; '
        f'a re-run resumes where this one stopped.')
    assert not [n for n in os.listdir(out) if '.done.' in n]  # no work lost

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, 'posix_fallocate', no_space)
        with pytest.raises(
                LatentStoreError,
                match='No space left for the latent store .* '
                'val.npy needs 0.000115 GB'):
            encode_val(config)
    encode_val(config)  # space again: the re-run completes the store
    LatentStore(out).check_complete('val')


def test_a_complete_store_needs_no_writes(store, monkeypatch):
    """Was, on a read-only file system: OSError traceback from the lock
    file; a complete store needs nothing written, so it is used as it is."""
    from ci2p_mm.utils.locks import ProcessLock
    config, root = store
    os.remove(osp.join(root, 'encode.lock'))
    before = folder_state(root)
    monkeypatch.setattr(LatentStore, 'writable', lambda self: False)
    monkeypatch.setattr(ProcessLock, 'acquire',
                        lambda self: pytest.fail('locked a read-only store'))
    assert encode_val(config, out=root) == root
    assert folder_state(root) == before
    os.remove(osp.join(root, 'val.done.0'))  # now there is work to do
    with pytest.raises(LatentStoreError) as err:
        encode_val(config, out=root)
    assert str(err.value) == (
        f'The latent store {root} cannot be written (a read-only file '
        f'system, or no write permission), and split \'val\' has 3 chunk(s) '
        f'to encode. Encode into a writable folder (--out), or make it '
        f'writable; a complete store is used without writing.')
