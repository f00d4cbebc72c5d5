"""Hostile inputs (issue 13): planted zoo files, unsafe loading anywhere.

Every entry that can reach a CompressAI zoo file is run against a file in
torch.hub's cache whose pickle would create a marker file, in two forms:
under CompressAI's published name (its SHA-256 does not match the prefix in
the name: refused before unpickling) and under a name that carries its own
SHA-256 prefix (as if an attacker found a 32-bit prefix collision: the
safe unpickler refuses it). The marker must never appear.
"""
import ast
import os
import os.path as osp
import pickle
import re

import pytest
import torch
from _hostile import (CreatesMarker, plant_zoo_file, sha256_of,
                      write_hostile_checkpoint, zoo_url)
from _reliability import TINY_ARCH
from conftest import REPO, codec_train_args, run_tool, write_tiny_config

from ci2p_mm.apis import test as run_test
from ci2p_mm.apis import train as run_train
from ci2p_mm.codec import CodecWeightsError, build_codec


@pytest.fixture
def hub(tmp_path):
    """An empty torch.hub directory for this test."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub'
    torch.hub.set_dir(old)


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    """The control: the payload is live, so its absence below means
    something."""
    marker = tmp_path / 'marker'
    pickle.loads(pickle.dumps(CreatesMarker(marker), protocol=2)).close()
    assert marker.exists()


# ---- every entry that can reach a codec file ----------------------------


def _backbone(ctx):
    from mmpretrain.registry import MODELS
    model = MODELS.build(
        dict(
            type='CI2PViT',
            arch=dict(TINY_ARCH),
            img_size=64,
            patch_cfg=dict(pretrained=True)))
    # Issue 12 moves the download from the constructor to init_weights().
    model.init_weights()


def _train(ctx):
    run_train([ctx['config'], '--work-dir', str(ctx['tmp'] / 'train')])


def _test(ctx):
    run_test([
        ctx['config'], ctx['checkpoint'], '--work-dir',
        str(ctx['tmp'] / 'test')
    ])


def _train_codec_finetune(ctx):
    from ci2p_mm.codec import training
    training.main(
        codec_train_args(ctx['images'], ctx['tmp'] / 'codec', 40,
                         '--finetune'))


def _codec_report(ctx):
    from ci2p_mm.codec import report
    report.main([
        'pretrained',
        str(ctx['images']), '--out-dir',
        str(ctx['tmp'] / 'report')
    ])


def _export_onnx(ctx):
    pytest.importorskip('onnxruntime', reason='the deploy extra')
    from ci2p_mm.deployment.pytorch2onnx import main
    main([
        ctx['config'], 'none', '--out',
        str(ctx['tmp'] / 'm.onnx'), '--shape', '64', '64'
    ])


ENTRIES = {
    'backbone build + init_weights': _backbone,
    'pytorch2onnx.py CONFIG none': _export_onnx,
    'tools/train.py': _train,
    'tools/test.py': _test,
    'train_codec.py --finetune': _train_codec_finetune,
    'codec_report.py pretrained': _codec_report,
}


@pytest.fixture(scope='module')
def entry_inputs(tmp_path_factory, toy_animals10, codec_images):
    """A tiny config asking for the zoo weights, and a checkpoint for it."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    tmp = tmp_path_factory.mktemp('entries')
    config = write_tiny_config(
        tmp, 'configs/ci2p_vit_animals10.py', toy_animals10, epochs=1)
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.patch_cfg.pretrained is True
    cfg.model.backbone.patch_cfg.pretrained = False
    checkpoint = str(tmp / 'tiny.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()},
               checkpoint)
    return dict(config=config, checkpoint=checkpoint, images=codec_images)


@pytest.mark.parametrize(
    'hash_matches', [False, True],
    ids=['published-name', 'hash-matching-name'])
@pytest.mark.parametrize('entry', list(ENTRIES))
def test_planted_zoo_file_never_runs(entry, hash_matches, entry_inputs, hub,
                                     tmp_path, monkeypatch):
    marker = tmp_path / 'PWNED'
    payload = write_hostile_checkpoint(
        tmp_path / 'payload.pth', marker,
        build_codec(pretrained=False).state_dict())
    cached = plant_zoo_file(
        hub, payload, monkeypatch=monkeypatch if hash_matches else None)
    ctx = dict(entry_inputs, tmp=tmp_path)
    raised = None
    try:
        ENTRIES[entry](ctx)
    except Exception as err:  # noqa: B902  judged below
        raised = err
    assert not marker.exists(), f'{entry}: code in {cached} ran'
    if entry == 'tools/test.py' and raised is None:
        # Once the codec is fetched in init_weights() (issue 12), testing
        # takes every weight from the checkpoint and never opens the zoo.
        return
    assert isinstance(raised, CodecWeightsError), repr(raised)
    message = str(raised)
    assert cached in message and 'Delete the file' in message
    assert 'Nothing in it was loaded' in message
    if hash_matches:
        assert 'safe loading' in message and 'open' in message
    else:
        assert 'are not the published file' in message
        assert sha256_of(cached)[:16] in message


@pytest.mark.slow
def test_planted_zoo_file_through_the_command_line(entry_inputs, tmp_path):
    """The reported case end to end: TORCH_HOME's cache, tools/train.py."""
    marker = tmp_path / 'PWNED'
    payload = write_hostile_checkpoint(tmp_path / 'payload.pth', marker)
    cached = plant_zoo_file(tmp_path / 'torch_home' / 'hub', payload)
    env = dict(os.environ, TORCH_HOME=str(tmp_path / 'torch_home'))
    with pytest.raises(AssertionError) as info:
        run_tool(
            'tools/train.py',
            entry_inputs['config'],
            '--work-dir',
            str(tmp_path / 'work'),
            env=env)
    assert not marker.exists()
    assert cached in str(info.value)
    assert 'Delete the file to download it again' in str(info.value)


def test_download_is_verified_against_the_hash_in_its_name(
        hub, tmp_path, monkeypatch):
    """torch.hub's own downloader, offline through a file:// URL."""
    from compressai.zoo import image as zoo_image
    reference = build_codec(pretrained=False)
    served = tmp_path / 'served'
    served.mkdir()
    original = osp.basename(zoo_url())
    source = tmp_path / 'weights.pth'
    torch.save(reference.state_dict(), source)
    digest = sha256_of(source)
    urls = zoo_image.model_urls['bmshj2018-factorized']['mse']
    cache = hub / 'checkpoints'

    # A server (or proxy) sends another file than the name promises.
    wrong = re.sub(r'-[a-f0-9]{8}\.', '-00000000.', original)
    (served / wrong).write_bytes(source.read_bytes())
    monkeypatch.setitem(urls, 5, (served / wrong).as_uri())
    with pytest.raises(
            CodecWeightsError,
            match='does not match the SHA-256 prefix 00000000'):
        build_codec('bmshj2018-factorized', 5, pretrained=True)
    assert not cache.exists() or not os.listdir(cache)  # nothing kept

    right = re.sub(r'-[a-f0-9]{8}\.', f'-{digest[:8]}.', original)
    (served / right).write_bytes(source.read_bytes())
    monkeypatch.setitem(urls, 5, (served / right).as_uri())
    codec = build_codec('bmshj2018-factorized', 5, pretrained=True)
    assert sorted(os.listdir(cache)) == [right]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(codec.g_a(x), reference.g_a(x))


def test_every_zoo_file_name_carries_a_hash():
    from compressai.zoo import image as zoo_image

    from ci2p_mm.codec.zoo import zoo_hash_prefix
    for metrics in zoo_image.model_urls.values():
        for urls in metrics.values():
            for url in urls.values():
                assert len(zoo_hash_prefix(url)) >= 8


# ---- no unsafe loading anywhere -----------------------------------------

SAFE_LOADER = osp.join('ci2p_mm', 'utils', 'io.py')
#: Loaders that unpickle without torch's safe loading unless told.
UNSAFE_BY_DEFAULT = {'load_state_dict_from_url', 'load_url'}


def _python_files(*folders):
    for folder in folders:
        for root, _, files in os.walk(osp.join(REPO, folder)):
            for name in files:
                if name.endswith('.py'):
                    path = osp.join(root, name)
                    with open(path) as f:
                        yield osp.relpath(path, REPO), f.read()


def _loads(tree):
    """(line, what) for torch.load-like calls and unsafe keywords."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in ('torch.load', 'torch.serialization.load', 'torch.hub.load'
                    ) or name.split('.')[-1] in UNSAFE_BY_DEFAULT:
            yield node.lineno, ast.unparse(node)
        for keyword in node.keywords:
            if keyword.arg == 'weights_only' and not (
                    isinstance(keyword.value, ast.Constant)
                    and keyword.value.value is True):
                yield node.lineno, ast.unparse(node)


def test_every_torch_load_is_the_safe_loader():
    """Item 2: the project loads torch files in one place, always safely:
    one ``torch.load(..., weights_only=True)`` call, in utils/io.py."""
    code = list(_python_files('ci2p_mm', 'tools', 'configs', 'demo'))
    for name in os.listdir(REPO):
        if name.endswith('.py'):
            with open(osp.join(REPO, name)) as f:
                code.append((name, f.read()))
    assert any(path == SAFE_LOADER for path, _ in code)
    calls = [(path, line, call) for path, text in code
             for line, call in _loads(ast.parse(text))]
    assert [(path, call) for path, _, call in calls
            ] == [(SAFE_LOADER, 'torch.load(local, map_location=map_location, '
                   'weights_only=True)')], calls
    # The literal text too (as `grep -rn` finds it), tests included.
    tests = [(p, t) for p, t in _python_files('tests')
             if p != osp.join('tests', 'test_security.py')]
    unsafe = [(path, i + 1) for path, text in code + tests
              for i, line in enumerate(text.splitlines())
              if re.search(r'weights_only\s*=\s*False', line)]
    assert not unsafe, unsafe


# ---- config text inside a checkpoint ------------------------------------


def test_config_text_in_a_checkpoint_never_runs(entry_inputs, tmp_path):
    """mmengine reads a checkpoint's ``meta['cfg']`` / ``meta['config']``
    with ``Config.fromstring``, which executes it: safe unpickling lets
    such strings through. CI2P-MM parses them instead."""
    marker = tmp_path / 'PWNED'
    code = (f"open({str(marker)!r}, 'w')\n"
            "model = dict(backbone=dict(type='CI2PViT'))\n")
    checkpoint = torch.load(entry_inputs['checkpoint'], weights_only=True)
    checkpoint['meta'] = dict(cfg=code, config=code, epoch=1, iter=2)
    hostile = str(tmp_path / 'hostile.pth')
    torch.save(checkpoint, hostile)
    no_zoo = ['--cfg-options', 'model.backbone.patch_cfg.pretrained=False']

    metrics = run_test([
        entry_inputs['config'], hostile, '--work-dir',
        str(tmp_path / 'test')
    ] + no_zoo)
    assert 'accuracy/top1' in metrics
    assert not marker.exists()

    with pytest.raises(Exception):  # no optimizer state: not resumable
        run_train([
            entry_inputs['config'], '--resume', hostile, '--work-dir',
            str(tmp_path / 'train')
        ] + no_zoo)
    assert not marker.exists()


def test_config_text_reader_reads_literals_only():
    from ci2p_mm.utils.config_text import UNREADABLE, read_config_text
    values = read_config_text(
        "import os\nos.system('true')\n"
        "model = dict(type='X', depth=-2, sizes=(1, 2), opts=[None, True],"
        " act=dict(type='GELU'), fn=print, n=len('ab'))\n"
        "gpu_ids = range(8)\nx: int = 3\n")
    assert values['model'] == dict(
        type='X',
        depth=-2,
        sizes=(1, 2),
        opts=[None, True],
        act=dict(type='GELU'),
        fn=UNREADABLE,
        n=UNREADABLE)
    assert values['gpu_ids'] is UNREADABLE and 'x' not in values
    assert read_config_text('model = dict(') == {}
