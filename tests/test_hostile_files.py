"""Hostile inputs, round three (issue 21): files that run programs, files
that never end, stores that lie.

Each case builds its hostile file here, shows what it does without the
project's check where that is safe to show (the control), and asserts the
named refusal or the safe outcome. docs/security.md lists the cases with
what a user sees.
"""
import ast
import contextlib
import os
import os.path as osp
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from _hostile import (POSTSCRIPT, GhostscriptSpy, jpeg_with_repeated_scan,
                      png_with_chunk, torch_records,
                      write_inflating_checkpoint, write_zip)
from _reliability import make_toy_data, write_config
from conftest import REPO, load_tool, write_tiny_config
from PIL import Image

import ci2p_mm.apis.training as train_api
from ci2p_mm.datasets import (Animals10, BadImageError, SafeLoadImageFromFile,
                              make_split)
from ci2p_mm.utils.image_files import ALLOWED_FORMATS, load_image_file
from ci2p_mm.utils.io import TMP_MARK

CLASSES = ('dog', 'horse', 'elephant', 'butterfly', 'chicken', 'cat', 'cow',
           'sheep', 'spider', 'squirrel')


@contextlib.contextmanager
def deadline(seconds=20):
    """Fail instead of hanging forever (a FIFO read by the old code)."""

    def expired(*_):
        raise TimeoutError(f'still blocked after {seconds} s')

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def toy(tmp_path):
    """A prepared toy Animals-10 (2 images per class, half for val)."""
    return make_toy_data(tmp_path / 'data', 2, 32, 0.5)


def add_to_annotations(root, path, label=0, split='train'):
    """List ``path`` in ``meta/<split>.txt`` as an annotation file from
    elsewhere could (prepare_animals10.py now leaves such files out)."""
    with open(osp.join(root, 'meta', f'{split}.txt'), 'a') as f:
        f.write(f'{osp.relpath(path, root)} {label}\n')


# ---- 1. a data set file that runs an external program ------------------


def test_control_pillow_alone_hands_postscript_to_ghostscript(
        tmp_path, monkeypatch):
    """What every entry did before: Pillow decodes by content, and its EPS
    plugin runs Ghostscript on a PostScript file, whatever its name."""
    spy = GhostscriptSpy(monkeypatch)
    path = tmp_path / 'x.jpg'
    path.write_bytes(POSTSCRIPT)
    with pytest.raises(OSError, match='Ghostscript would have run'):
        Image.open(path).load()
    assert spy.ran


def test_postscript_named_jpg_never_reaches_ghostscript(
        toy, tmp_path, monkeypatch, capsys):
    spy = GhostscriptSpy(monkeypatch)
    eps = osp.join(toy, 'raw-img', 'cane', 'x.jpg')
    with open(eps, 'wb') as f:
        f.write(POSTSCRIPT)
    add_to_annotations(toy, eps)
    expected = 'not an image in an allowed format: its content is EPS'
    # Training's loader (and the dataset that calls it).
    with pytest.raises(BadImageError, match=expected) as info:
        SafeLoadImageFromFile()(dict(img_path=eps))
    assert eps in str(info.value)
    pipeline = [dict(type='SafeLoadImageFromFile'), dict(type='PackInputs')]
    dataset = Animals10(data_root=toy, split='train', pipeline=pipeline)
    with pytest.raises(BadImageError, match=expected):
        dataset[len(dataset) - 1]
    # verify_dataset.py lists it.
    from ci2p_mm.datasets import verify
    assert verify.main(
        [write_config(tmp_path, toy), '--split', 'train', '--workers',
         '1']) == 1
    assert f'BAD {eps}: {expected}' in capsys.readouterr().out
    # The demo, the codec tools' folders, the ISIC mask reader.
    from ci2p_mm.datasets.isic import ISICLayoutError, binarize_mask
    from ci2p_mm.inference import classify_image
    from ci2p_mm.utils.image_files import (ImageFolderError, image_size,
                                           load_rgb)
    with pytest.raises(BadImageError, match=expected):
        classify_image(eps, 'configs/ci2p_vit_animals10.py')
    for read in (load_rgb, image_size, binarize_mask):
        with pytest.raises((ImageFolderError, ISICLayoutError),
                           match='its content is EPS'):
            read(eps)
    assert not spy.used, 'the EPS plugin saw the file'


def test_only_the_allowed_formats_are_decoded(tmp_path):
    """Photo formats decode; formats Pillow reads but a data set of photos
    does not hold are refused by name."""
    rgb = np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)
    for fmt, ext in (('JPEG', 'jpg'), ('PNG', 'png'), ('BMP', 'bmp'), ('WEBP',
                                                                       'webp'),
                     ('TIFF', 'tif'), ('GIF', 'gif'), ('PPM', 'ppm')):
        Image.fromarray(rgb).save(tmp_path / f'a.{ext}', format=fmt)
        decoded = load_image_file(str(tmp_path / f'a.{ext}'))
        assert decoded.shape == (16, 16, 3)
        assert fmt in ALLOWED_FORMATS
    for fmt in ('ICO', 'TGA', 'PCX', 'SGI'):
        path = tmp_path / f'a_{fmt.lower()}.jpg'
        Image.fromarray(rgb).save(path, format=fmt)
        assert Image.open(path).format == fmt  # Pillow alone decodes it
        with pytest.raises(BadImageError, match='not an image'):
            load_image_file(str(path))


# ---- 3. files that never end, and links out of the data root -----------


def test_fifo_device_and_links_are_refused_unread(toy, tmp_path, capsys):
    cane = osp.join(toy, 'raw-img', 'cane')
    fifo = osp.join(cane, 'pipe.png')
    os.mkfifo(fifo)
    zero = osp.join(cane, 'zero.jpg')
    os.symlink('/dev/zero', zero)
    secret = tmp_path / 'private.txt'
    secret.write_text('password=hunter2\n')
    leak = osp.join(cane, 'leak.jpg')
    os.symlink(secret, leak)
    inside = osp.join(cane, 'alias.jpg')
    first = sorted(f for f in os.listdir(cane) if f.endswith('.jpeg'))[0]
    os.symlink(first, inside)
    huge = osp.join(cane, 'huge.png')
    with open(huge, 'wb') as f:
        f.truncate(300 << 20)  # sparse: nothing written
    folder = osp.join(cane, 'folder.jpg')
    os.mkdir(folder)
    for path in (fifo, zero, leak, inside, huge, folder):
        add_to_annotations(toy, path)
    loader = SafeLoadImageFromFile(data_root=toy)
    open_files = len(os.listdir('/proc/self/fd'))
    for _ in range(3):  # a folder: refused, and no descriptor left open
        assert loader.check(folder) == ('a folder, not a regular file; '
                                        'not read')
    assert len(os.listdir('/proc/self/fd')) == open_files
    with deadline():
        assert loader.check(fifo) == ('a named pipe (FIFO), not a regular '
                                      'file; not read')
        assert loader.check(zero) == (
            f'a symbolic link to /dev/zero, outside the data root '
            f'{osp.realpath(toy)}')
        assert 'outside the data root' in loader.check(leak)
        assert loader.check(inside) is None  # a link inside the root
        assert loader.check(huge) == (
            f'{300 << 20} bytes, more than max_file_bytes=268435456 (the cap '
            f'on one image file); not read')
        # Links allowed out of the root: still never read unless regular,
        # and a non-image's bytes are never quoted.
        trusting = SafeLoadImageFromFile(allow_symlinks_out_of_root=True)
        assert trusting.check(zero) == (
            'a character device, not a regular file (it is a symbolic link '
            'to /dev/zero); not read')
        with pytest.raises(BadImageError) as info:
            trusting(dict(img_path=leak))
        assert 'not an image: its content is text' in str(info.value)
        assert 'hunter2' not in str(info.value)
        # verify_dataset.py: the dataset gives the loader its data root.
        from ci2p_mm.datasets import verify
        assert verify.main([
            write_config(tmp_path, toy), '--split', 'train', '--workers', '2'
        ]) == 1
    out = capsys.readouterr().out
    for path in (fifo, zero, leak, huge, folder):
        assert f'BAD {path}: ' in out
    assert f'BAD {inside}' not in out and 'hunter2' not in out
    assert 'train Animals10: 16 images, 5 bad, 11 good' in out


def test_isic_converter_refuses_devices_and_fifos(tmp_path):
    from ci2p_mm.datasets import ISICLayoutError, convert_isic2017
    src = tmp_path / 'isic'
    images = src / 'ISIC-2017_Training_Data'
    masks = src / 'ISIC-2017_Training_Part1_GroundTruth'
    images.mkdir(parents=True)
    masks.mkdir()
    rgb = np.full((16, 16, 3), 128, np.uint8)
    Image.fromarray(rgb).save(images / 'ISIC_0000000.jpg')
    Image.fromarray(np.full(
        (16, 16), 255, np.uint8)).save(masks / 'ISIC_0000000_segmentation.png')
    out = tmp_path / 'out'
    assert convert_isic2017(str(src), str(out)) == {'train': 1}
    assert (np.asarray(
        Image.open(out / 'ann_dir' / 'train' /
                   'ISIC_0000000.png')) == 1).all()
    # Was: 18 GB copied from /dev/zero in 35 s, until the disk was full.
    os.symlink('/dev/zero', images / 'ISIC_0000001.jpg')
    Image.fromarray(np.zeros(
        (16, 16), np.uint8)).save(masks / 'ISIC_0000001_segmentation.png')
    with deadline(), pytest.raises(
            ISICLayoutError,
            match=r'ISIC_0000001\.jpg: a symbolic link to '
            r'/dev/zero, outside the data root'):
        convert_isic2017(str(src), str(out / 'b'))
    assert not osp.exists(out / 'b' / 'img_dir' / 'train' / 'ISIC_0000001.jpg')
    os.remove(images / 'ISIC_0000001.jpg')
    Image.fromarray(rgb).save(images / 'ISIC_0000001.jpg')
    os.remove(masks / 'ISIC_0000001_segmentation.png')
    os.mkfifo(masks / 'ISIC_0000001_segmentation.png')
    with deadline(), pytest.raises(
            ISICLayoutError,
            match=r'ISIC_0000001_segmentation\.png: a named '
            r'pipe \(FIFO\), not a regular file'):
        convert_isic2017(str(src), str(out / 'c'))


# ---- 4. checkpoint inflation -------------------------------------------


@pytest.fixture
def torch_load_spy(monkeypatch):
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    return calls


def test_zip_bomb_checkpoint_is_refused_before_allocation(
        tmp_path, torch_load_spy):
    """A 1.4 MB file whose record declares 1.5 GB (DEFLATE of zeros): was
    loaded, peaking at 1.5 GB above the interpreter's own memory."""
    from ci2p_mm.engine import CheckpointError, read_checkpoint_file
    bomb = write_inflating_checkpoint(tmp_path / 'bomb.pth')
    size = osp.getsize(bomb)
    assert size < 1.5e6
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_file(bomb)  # tools/test.py, --resume, load_from
    assert str(info.value) == (
        f'Checkpoint {bomb} is refused before loading: its 7 records '
        f'declare 1493172443 bytes in all, {1493172443 - size} more than the '
        f"file's own {size} bytes (the cap is 268435456; torch writes its "
        f'records uncompressed). Loading it would allocate that much memory '
        f'(a "zip bomb"). If you trust the file, re-save it with torch.save '
        f'in a trusted environment (torch writes records uncompressed).')
    assert torch_load_spy == []
    # The whole process stays small: the safe loader alone (utils/io.py
    # needs only torch and its neighbours errors.py and locks.py, loaded
    # as a package of their own, without ci2p_mm/__init__), in a fresh
    # interpreter, peak memory before/after.
    code = ('import resource, sys, types\n'
            'utils = types.ModuleType("utils_")\n'
            'utils.__path__ = [%r]\n'
            'sys.modules["utils_"] = utils\n'
            'import utils_.io as io_\n'
            'before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
            'try:\n    io_.load_torch_file(%r)\nexcept RuntimeError:\n'
            '    pass\n'
            'after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
            'print(after - before)\n' %
            (osp.join(REPO, 'ci2p_mm', 'utils'), bomb))
    grown_kib = int(
        subprocess.run([sys.executable, '-c', code],
                       capture_output=True,
                       text=True,
                       check=True,
                       timeout=300).stdout.strip())
    assert grown_kib < 64 * 1024, f'peak memory grew by {grown_kib} KiB'


def test_stored_records_that_lie_or_overlap_are_refused(
        tmp_path, torch_load_spy):
    import zlib

    from ci2p_mm.utils.io import load_torch_file
    real = tmp_path / 'real.pth'
    torch.save({'w': torch.arange(4096.)}, real)
    records = [(name, data, 0, len(data), zlib.crc32(data))
               for name, data in torch_records(real)]
    data_index = next(i for i, r in enumerate(records)
                      if r[0].endswith('/data/0'))
    # An uncompressed record declaring 1000 times what it stores.
    lying = list(records)
    name, data, _, _, crc = lying[data_index]
    lying[data_index] = (name, data, 0, len(data) * 1000, crc)
    with pytest.raises(
            RuntimeError,
            match=r'its record real/data/0 is stored '
            r'uncompressed in 16384 bytes but declares 16384000'):
        load_torch_file(write_zip(tmp_path / 'lying.pth', lying))
    # 200 directory entries for the one tensor record: each would be
    # allocated again.
    overlap = write_zip(tmp_path / 'overlap.pth', records,
                        [(f'real/data/{k}', data_index)
                         for k in range(1, 201)])
    with pytest.raises(
            RuntimeError,
            match=r'its 207 records store \d+ '
            r'bytes in all in a file of \d+ bytes: they overlap'):
        load_torch_file(overlap)
    assert torch_load_spy == []
    # The same records, honestly written, load.
    honest = load_torch_file(write_zip(tmp_path / 'honest.pth', records))
    assert torch.equal(honest['w'], torch.arange(4096.))


# ---- 2. what we publish is safe for the libraries that read it ----------


@pytest.fixture
def planted(tmp_path, toy_animals10, monkeypatch):
    """A training checkpoint whose config texts (meta.cfg, meta.config,
    message_hub's runtime_info.cfg) also carry code: a call that creates
    a marker, a custom import whose module creates one, a _base_."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    marker = tmp_path / 'PWNED'
    plugin_dir = tmp_path / 'plugins'
    plugin_dir.mkdir()
    (plugin_dir /
     'evil_plugin.py').write_text(f'open({str(marker)!r}, "w").close()\n')
    evil_base = tmp_path / 'evil_base.py'
    evil_base.write_text(f'open({str(marker)!r}, "w").close()\nx = 1\n')
    monkeypatch.syspath_prepend(str(plugin_dir))
    config = write_tiny_config(
        tmp_path, 'configs/ci2p_vit_animals10.py', toy_animals10, epochs=1)
    cfg = Config.fromfile(config)
    cfg.model.backbone.patch_cfg.pretrained = False
    model = MODELS.build(cfg.model)
    code = (f"open({str(marker)!r}, 'w').close()\n"
            f"_base_ = [{str(evil_base)!r}]\n"
            "custom_imports = dict(imports=['ci2p_mm', 'evil_plugin'], "
            "allow_failed_imports=False)\n")
    checkpoint = dict(
        state_dict=model.state_dict(),
        meta=dict(
            cfg=cfg.pretty_text + code,
            config=code + 'gpu_ids = [0, 1]\n',
            epoch=1,
            iter=2,
            dataset_meta=dict(classes=CLASSES)),
        message_hub=dict(runtime_info=dict(cfg=code)))
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(checkpoint, path)
    return path, marker, config, model


def test_control_stock_mmengine_executes_config_text(planted):
    """What a published file carried onward: mmengine's reader runs it."""
    from mmengine.config import Config
    path, marker, _, _ = planted
    text = torch.load(path, weights_only=True)['meta']['cfg']
    Config.fromstring(text, file_format='.py')
    assert marker.exists()


def test_published_config_is_data_for_stock_mmengine(planted, tmp_path,
                                                     capsys):
    from mmengine.infer import BaseInferencer
    from mmengine.runner import Runner

    from ci2p_mm.engine.publish import publish_checkpoint
    path, marker, config, model = planted
    final = publish_checkpoint(path, str(tmp_path / 'pub' / 'tiny.pth'))
    out = capsys.readouterr().out
    assert f"{path}: meta.cfg line " in out and "dropped `open(" in out
    assert 'dropped `_base_` (it makes mmengine load and run other files)' \
        in out
    assert "dropped custom_imports ['evil_plugin']" in out
    published = torch.load(final, weights_only=True)
    assert 'message_hub' not in published
    meta = published['meta']
    assert meta['config'] == 'gpu_ids = [0, 1]\n'
    for statement in ast.parse(meta['cfg']).body:  # name = literal, only
        assert isinstance(statement, ast.Assign)
        ast.literal_eval(statement.value)
    assert not marker.exists()

    class StockInferencer(BaseInferencer):

        def _init_pipeline(self, cfg):
            return lambda inputs: inputs

        def visualize(self, *args, **kwargs):
            return None

        def postprocess(self, *args, **kwargs):
            return None

    # mmengine's BaseInferencer with model=None builds from meta.cfg.
    inferencer = StockInferencer(
        model=None, weights=final, device='cpu', scope='mmpretrain')
    built = inferencer.model
    assert type(built.backbone).__name__ == 'CI2PViT'
    for key, value in model.state_dict().items():
        assert torch.equal(built.state_dict()[key], value), key
    assert not marker.exists()
    # mmengine's Runner.resume reads meta.config: the literal gpu_ids is
    # seen (it refuses 2 recorded GPUs on 1 process); nothing else runs.
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'resume')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match='Number of GPUs used'):
        runner.resume(
            final, resume_optimizer=False, resume_param_scheduler=False)
    assert not marker.exists()


def test_publish_refuses_config_values_that_are_code(planted, tmp_path):
    from ci2p_mm.engine import CheckpointError
    from ci2p_mm.engine.checkpoint import describe_saved_model
    from ci2p_mm.engine.publish import publish_checkpoint
    path, marker, _, _ = planted
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['meta']['cfg'] += 'model = dict(type=VisionTransformer)\n'
    torch.save(checkpoint, path)
    out_dir = tmp_path / 'pub'
    refused = (r'its config text \(meta.cfg\) cannot be published as data: '
               r'line \d+: `model = ...` holds `VisionTransformer`, which is '
               r'not a literal')
    with pytest.raises(CheckpointError, match=refused):
        publish_checkpoint(path, str(out_dir / 'tiny.pth'), report=print)
    assert not out_dir.exists() or not os.listdir(out_dir)
    tool = load_tool('tools/model_converters/publish_model.py')
    assert tool.main([path, str(out_dir / 'tiny.pth'), '--no-config']) == 0
    final, = [str(out_dir / n) for n in os.listdir(out_dir)]
    meta = torch.load(final, weights_only=True)['meta']
    assert 'cfg' not in meta and 'config' not in meta
    assert meta['dataset_meta'] == dict(classes=CLASSES)
    assert describe_saved_model({'meta': meta}) == ''
    assert not marker.exists()


@pytest.mark.slow  # end to end (pytest.ini)
def test_every_shipped_config_survives_as_data():
    """What publish keeps of a config reads back, through mmengine, as the
    same config: no shipped config needs code to be described."""
    import glob

    from mmengine.config import Config

    from ci2p_mm.utils import known_warnings_silenced
    from ci2p_mm.utils.config_text import data_only_config_text

    # The paper's configs and the demo's (all 45 classification configs
    # pass too: about 20 s on 2 cores).
    paths = sorted(
        glob.glob(osp.join(REPO, 'configs', '*.py')) +
        glob.glob(osp.join(REPO, 'configs', 'demo', '*.py')))
    assert len(paths) >= 10
    with known_warnings_silenced():
        for path in paths:
            cfg = Config.fromfile(path)
            text, notes = data_only_config_text(cfg.pretty_text)
            assert notes == [], path
            again = Config.fromstring(text, file_format='.py')
            assert again.to_dict() == cfg.to_dict(), path


# ---- 7. smaller ones -----------------------------------------------------


def test_demo_refuses_a_checkpoint_without_its_head(tmp_path, toy_animals10,
                                                    capsys):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    from ci2p_mm.engine import CheckpointError
    config = write_tiny_config(
        tmp_path,
        'configs/ci2p_vit_animals10.py',
        toy_animals10,
        epochs=1,
        extra="model['backbone']['patch_cfg'] = dict(pretrained=False)\n")
    state_dict = MODELS.build(Config.fromfile(config).model).state_dict()
    headless = {
        k: v
        for k, v in state_dict.items() if not k.startswith('head.')
    }
    checkpoint = str(tmp_path / 'headless.pth')
    torch.save({'state_dict': headless}, checkpoint)
    image = str(tmp_path / 'cat.png')
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(image)
    demo = load_tool('demo/image_demo.py')
    with pytest.raises(
            CheckpointError,
            match=(
                f'Checkpoint {checkpoint} does not fit the model of {config} '
                r'\(CI2PViT\): missing from the file: head.fc.weight, '
                r'head.fc.bias')):
        demo.main([image, config, checkpoint])
    torch.save(
        {
            'state_dict': state_dict,
            'meta': dict(dataset_meta=dict(classes=CLASSES))
        }, checkpoint)
    capsys.readouterr()
    assert demo.main([image, config, checkpoint, '--topk', '2']) == 0
    # (rank, class, score) lines; the inferencer's progress bar may precede
    # the first one on its line.
    ranked = re.findall(r'(\d)\. (\S+) +([0-9.]+)$',
                        capsys.readouterr().out, re.MULTILINE)
    assert [r[0] for r in ranked] == ['1', '2'] and ranked[0][1] in CLASSES


@pytest.mark.parametrize('content, problem', [
    (b'', 'Annotation file {} lists no samples (it is empty)'),
    (b'\n  \n', 'Annotation file {} lists no samples (it is empty)'),
    (b'a.jpg 0\nb.jpg 1\ncaf\xe9.jpg 2\n',
     '{}, line 3: not UTF-8 text (byte 4 of the line cannot be decoded)'),
    (b'a.jpg 0\n\nb.jpg \xc2\xb2\n',
     '{}, line 3: expected "<path> <label 0-9>" (ASCII digits), got '
     "'b.jpg \u00b2'"),
    (b'a.jpg 10\n', '{}, line 1: expected "<path> <label 0-9>"'),
    (b'a.jpg\n', '{}, line 1: expected "<path> <label 0-9>"'),
])
def test_annotation_errors_name_file_and_line(toy, tmp_path, capsys, content,
                                              problem):
    from ci2p_mm.datasets.annotations import AnnotationError
    ann_file = osp.join(toy, 'meta', 'train.txt')
    with open(ann_file, 'wb') as f:
        f.write(content)
    expected = problem.format(ann_file)
    with pytest.raises(AnnotationError) as info:
        Animals10(data_root=toy, split='train')
    assert str(info.value).startswith(expected), str(info.value)
    assert 'prepare_animals10.py' in str(info.value)
    from ci2p_mm.datasets import verify
    assert verify.main([write_config(tmp_path, toy), '--split', 'train']) == 2
    assert expected in capsys.readouterr().err
    with pytest.raises(AnnotationError, match='prepare_animals10'):
        train_api.train(
            [write_config(tmp_path, toy), '--work-dir',
             str(tmp_path / 'w')])


@pytest.mark.parametrize('make', [os.mkfifo, os.mkdir])
def test_annotation_file_that_is_a_fifo_or_folder_is_refused(toy, make):
    from ci2p_mm.datasets.annotations import AnnotationError
    ann_file = osp.join(toy, 'meta', 'train.txt')
    os.remove(ann_file)
    make(ann_file)
    open_files = len(os.listdir('/proc/self/fd'))
    with deadline(), pytest.raises(
            AnnotationError, match='is not a regular file'):
        Animals10(data_root=toy, split='train')
    assert len(os.listdir('/proc/self/fd')) == open_files


def test_prepare_animals10_lists_unusable_files_and_writes_atomically(
        tmp_path, capsys):
    from ci2p_mm.datasets import make_toy_animals10
    from ci2p_mm.datasets.animals10 import main, prepare
    from ci2p_mm.utils.cli import run
    raw = make_toy_animals10(str(tmp_path / 'kaggle'), 3, 16)
    out = str(tmp_path / 'out')
    first = make_split(raw, out, 0.34, 0)
    meta = osp.join(out, 'meta')
    before = {
        n: open(osp.join(meta, n), 'rb').read()
        for n in ('train.txt', 'val.txt', 'classes.txt', 'split.json')
    }
    cane = osp.join(raw, 'cane')
    good = sorted(os.listdir(cane))[0]
    # A name that is not UTF-8, a FIFO, a link out of raw-img.
    bad_name = os.path.join(os.fsencode(cane), b'caf\xe9.jpg')
    with open(bad_name, 'wb') as f:
        f.write(open(osp.join(cane, good), 'rb').read())
    os.mkfifo(osp.join(cane, 'pipe.png'))
    os.symlink('/dev/zero', osp.join(cane, 'zero.jpg'))
    # --strict refuses, naming them; the earlier files stay as they were
    # (the old code left train.txt empty and val.txt cut).
    with pytest.raises(SystemExit) as info:
        run(main, [raw, out, '--val-ratio', '0.34', '--strict'])
    assert info.value.code == 2
    message = capsys.readouterr().err
    assert 'cannot be listed' in message
    assert f'{cane}/caf\\xe9.jpg (its name is not UTF-8 text)' in message
    assert f'{cane}/pipe.png (not a regular file' in message
    assert f'{cane}/zero.jpg (a symbolic link to /dev/zero, outside' in message
    for name, data in before.items():
        assert open(osp.join(meta, name), 'rb').read() == data, name
    # Without --strict: left out, listed, the split as before.
    summary = prepare([raw, out, '--val-ratio', '0.34'])
    printed = capsys.readouterr().out
    assert 'Left out 3 image file(s) that cannot be listed: ' in printed
    assert 'caf\\xe9.jpg (its name is not UTF-8 text)' in printed
    assert sorted(summary['unusable']) == sorted(
        [f'{cane}/caf\\xe9.jpg', f'{cane}/pipe.png', f'{cane}/zero.jpg'])
    assert summary['counts'] == first['counts']
    for name in ('train.txt', 'val.txt', 'classes.txt'):
        assert open(osp.join(meta, name), 'rb').read() == before[name]
    assert not [n for n in os.listdir(meta) if TMP_MARK in n]


def test_load_image_rgb_is_a_deprecated_alias(toy):
    from mmpretrain.registry import TRANSFORMS

    from ci2p_mm.datasets import LoadImageRGB
    with pytest.warns(
            FutureWarning, match="write dict\\(type="
            "'SafeLoadImageFromFile'"):
        old = TRANSFORMS.build(dict(type='LoadImageRGB', min_size=4))
    assert isinstance(old, LoadImageRGB) and isinstance(
        old, SafeLoadImageFromFile)
    path = osp.join(toy, 'raw-img', 'cane',
                    sorted(os.listdir(osp.join(toy, 'raw-img', 'cane')))[0])
    new = TRANSFORMS.build(dict(type='SafeLoadImageFromFile', min_size=4))
    assert np.array_equal(
        old(dict(img_path=path))['img'],
        new(dict(img_path=path))['img'])
    # BGR, as the names LoadImageFromFile and SafeLoadImageFromFile say.
    rgb = load_image_file(path)
    assert np.array_equal(new(dict(img_path=path))['img'], rgb[..., ::-1])


def test_utils_imports_no_other_ci2p_package():
    """utils is the lowest layer: nothing in it imports another ci2p_mm
    package (image decoding lives there for everyone)."""
    for name in sorted(os.listdir(osp.join(REPO, 'ci2p_mm', 'utils'))):
        if not name.endswith('.py'):
            continue
        with open(osp.join(REPO, 'ci2p_mm', 'utils', name)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or '']
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                assert not module.startswith('ci2p_mm.') or \
                    module.startswith('ci2p_mm.utils'), (name, module)


# ---- issue 27: decode stalls, decode memory, metadata, cut logs -------


def test_a_jpeg_of_thousands_of_scans_is_refused_before_decoding(
        toy, tmp_path, monkeypatch, capsys):
    """One scan repeated: every image check passed it, then libjpeg made a
    pass over the whole image per scan (20 s for a 123 KB 12 MP file)."""
    from PIL import ImageFile

    from ci2p_mm.datasets import ISICLayoutError, verify
    from ci2p_mm.datasets.isic import read_image
    from ci2p_mm.utils.image_files import (MAX_JPEG_SCANS, ImageFolderError,
                                           load_rgb)
    stall = osp.join(toy, 'raw-img', 'cane', 'stall.jpg')
    with open(stall, 'wb') as f:
        f.write(jpeg_with_repeated_scan(repeats=2000))
    normal = tmp_path / 'normal.jpg'
    normal.write_bytes(jpeg_with_repeated_scan(repeats=0))
    assert load_image_file(str(normal)).shape == (192, 256, 3)
    # Control: Pillow alone decodes it (quickly at this size).
    with Image.open(stall) as img:
        img.load()
    decoded, load = [], ImageFile.ImageFile.load

    def spy(img):
        decoded.append(img.size)
        return load(img)

    monkeypatch.setattr(ImageFile.ImageFile, 'load', spy)
    reason = (f'a JPEG of 2010 scans, more than MAX_JPEG_SCANS='
              f'{MAX_JPEG_SCANS} (encoders write about 10; each scan is a '
              f'pass over the whole image, so decoding it would stall); not '
              f'decoded')
    with pytest.raises(BadImageError) as info:
        load_image_file(stall)  # the demo's and tools/test.py's reader
    assert info.value.reason == reason and stall in str(info.value)
    assert SafeLoadImageFromFile().check(stall) == reason
    with pytest.raises(ImageFolderError, match='2010 scans'):
        load_rgb(stall)  # train_codec.py, codec_report.py
    with pytest.raises(ISICLayoutError, match='2010 scans'):
        read_image(stall, toy)  # isic2017.py copies only what decodes
    add_to_annotations(toy, stall)
    assert verify.main([write_config(tmp_path, toy), '--split', 'train']) == 1
    assert f'BAD {stall}: {reason}' in capsys.readouterr().out
    assert (256, 192) not in decoded  # the toy images (32x32) decode


@pytest.mark.parametrize('kind, before_idat',
                         [(b'zTXt', True), (b'iCCP', True), (b'zTXt', False),
                          (b'iCCP', False)])
def test_png_metadata_over_pillows_limit_is_named(tmp_path, kind, before_idat):
    """Was: "truncated or corrupt header (ValueError)"."""
    path = tmp_path / 'meta.png'
    path.write_bytes(png_with_chunk(kind, before_idat=before_idat))
    assert path.stat().st_size < 200_000  # 100 MB once decompressed
    with pytest.raises(BadImageError) as info:
        load_image_file(str(path))
    assert info.value.reason.startswith(
        'its metadata is too large: a PNG text or ICC profile chunk (tEXt, '
        'zTXt, iTXt, iCCP) beyond Pillow\'s limits (MAX_TEXT_CHUNK=1048576 '
        'bytes a chunk, MAX_TEXT_MEMORY=67108864 in all)'), info.value.reason
    assert 'Fix: re-export the image without its metadata' in str(info.value)
    assert str(path) in str(info.value)


#: Peak memory one decode adds, over its RGB result's bytes, in a fresh
#: interpreter: the high-water mark of its resident memory (VmHWM: ru_maxrss
#: would carry pytest's own size over the exec; tracemalloc misses Pillow's
#: C allocations). ci2p_mm/__init__ is skipped (it imports torch and
#: mmpretrain); the reader is in ci2p_mm.utils.
PEAK_SCRIPT = """
import sys, types
package = types.ModuleType('ci2p_mm')
package.__path__ = [sys.argv[1]]
sys.modules['ci2p_mm'] = package
from ci2p_mm.utils.image_files import load_image_file
def high_water():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmHWM'))
base = high_water()
img = load_image_file(sys.argv[2])
print((high_water() - base) * 1024 / img.nbytes)
"""


def decode_peak_ratio(path):
    return float(
        subprocess.run([
            sys.executable, '-c', PEAK_SCRIPT,
            osp.join(REPO, 'ci2p_mm'), path
        ],
                       check=True,
                       capture_output=True,
                       text=True).stdout)


@pytest.mark.parametrize('mode', ['RGBA', 'I;16'])
@pytest.mark.slow  # end to end (pytest.ini)
def test_decode_memory_stays_within_its_bound(tmp_path, mode):
    """Flat 36 MP PNGs of 0.2 MB. Was: 6.7 (RGBA composited at full size)
    and 6.3 (16-bit grey through int64) times the RGB result; the bound in
    ci2p_mm/utils/image_files.py is 7 bytes a pixel (2.33 times) and a
    stripe's temporaries (measured: 2.4 and 2.1)."""
    path = str(tmp_path / 'flat.png')
    Image.new(mode, (6000, 6000), 40000 if mode == 'I;16' else
              (10, 20, 30, 128)).save(path)
    ratio = decode_peak_ratio(path)
    assert 0.9 < ratio < 2.8, ratio


def test_a_cut_training_log_still_plots(tmp_path, monkeypatch):
    """Was: JSONDecodeError and no figure for a scalars.json whose last
    line a crash or a full disk cut short."""
    import ci2p_mm.utils.curves as curves
    from ci2p_mm.analysis.plot_curves import main
    log = tmp_path / 'run' / '20260101_000000' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    log.write_bytes(b'{"loss": 2.0, "epoch": 1, "step": 1}\n'
                    b'{"accuracy/top1": 30.0, "step": 1}\n'
                    b'\x00\x00\x00\n'  # what some file systems leave
                    b'{"loss": 1.0, "epoch": 2, "step": 2}\n'
                    b'{"accuracy/top1": 50.0, "step": 2}\n'
                    b'{"loss": 0.5, "epo')
    fifo = tmp_path / 'run' / '20260102_000000' / 'vis_data' / 'scalars.json'
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)  # never opened: it would block
    warned = []
    monkeypatch.setattr(curves, 'print_log',
                        lambda message, **_: warned.append(message))
    out = str(tmp_path / 'curves.png')
    with deadline():
        assert main([str(tmp_path / 'run'), '--out', out]) == 0
    assert Image.open(out).size[0] > 100
    assert warned == [
        f'{log}: skipped 2 line(s) that are not JSON records (line 3, 6); a '
        f'crash or a full disk leaves the last line of a log cut short.'
    ]
    assert curves.load_curves(str(tmp_path / 'run')) == dict(
        loss_epochs=[1, 2],
        loss=[2.0, 1.0],
        val_epochs=[1, 2],
        val=[30.0, 50.0])


def test_backend_args_read_through_mmengine(tmp_path):
    """With ``backend_args`` the one reader fetches the file through
    mmengine, then size-checks and decodes it as it does a local one."""
    path = tmp_path / 'a.png'
    Image.new('RGB', (16, 12), (10, 20, 30)).save(path)
    load = SafeLoadImageFromFile(backend_args=dict(backend='local'))
    img = load(dict(img_path=str(path)))['img']
    assert img.shape == (12, 16, 3) and img[0, 0].tolist() == [30, 20, 10]
    assert load.check(str(tmp_path / 'missing.png')) == 'file not found'
    small = SafeLoadImageFromFile(
        backend_args=dict(backend='local'), max_file_bytes=10)
    assert 'more than max_file_bytes=10' in small.check(str(path))
