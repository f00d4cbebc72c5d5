"""Settings and paths that used to end in a traceback (or in a run that
did nothing) are refused in one ``error:`` line, exit status 2.

Issue 27, items 13 and 15 (and 8: ``--amp`` on the CPU now trains). Each
command line runs in this process through :func:`ci2p_mm.utils.cli.run`,
exactly as its ``tools/`` shim runs it; tests/test_tool_clis.py runs the
shims themselves.
"""
import os
import os.path as osp
import pickle
import shutil
import socket

import pytest
import torch
from _reliability import make_toy_data, small_tmpfs, write_config

import ci2p_mm.apis.testing as test_api
import ci2p_mm.apis.training as train_api
from ci2p_mm.model_converters import cvt
from ci2p_mm.utils import read_config
from ci2p_mm.utils.cli import run


def refusal(main, argv, capsys):
    """The one line ``main(argv)`` prints when it refuses (exit 2)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2, err
    assert len(err) == 1 and err[0].split(': error: ', 1)[0]
    return err[0].split(': error: ', 1)[1]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('refusals')
    root = make_toy_data(tmp / 'data', 2, 64, 0.5)
    return tmp, write_config(tmp, root, epochs=1)


def test_missing_and_broken_configs(tmp_path, capsys):
    missing = str(tmp_path / 'nope.py')
    assert refusal(train_api.main, [missing],
                   capsys) == (f'Config {missing}: it does not exist.')
    broken = tmp_path / 'broken.py'
    broken.write_text("model = dict(\n    type='CI2PViT',\n")
    assert refusal(train_api.main, [str(broken)], capsys) == (
        f"Config {broken}: line 1: '(' was never closed (model = dict().")
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['broken.py']\n")
    assert refusal(train_api.main, [str(child)], capsys) == (
        f"Config {child}: {broken}, line 1: '(' was never closed (model = "
        f"dict().")
    orphan = tmp_path / 'orphan.py'
    orphan.write_text("_base_ = ['gone.py']\n")
    assert refusal(train_api.main, [str(orphan)], capsys) == (
        f'Config {orphan}: its _base_ file {tmp_path}/gone.py does not '
        f'exist.')
    latin1 = tmp_path / 'latin1.py'
    latin1.write_bytes(b"# caf\xe9\nx = 1\n")
    assert refusal(train_api.main, [str(latin1)],
                   capsys) == (f'Config {latin1}: not UTF-8 text (byte 5).')


def test_a_base_list_that_is_an_expression_reads(tmp_path):
    """A ``_base_`` that mmengine reads but that is not a plain literal is
    not the file-and-line check's business (it raised TypeError)."""
    (tmp_path / 'base.py').write_text('x = 1\n')
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['base.py'] + []\ny = 2\n")
    cfg = read_config(str(child))
    assert (cfg.x, cfg.y) == (1, 2)


@pytest.mark.parametrize('split', ['train', 'val', 'test'])
@pytest.mark.parametrize('key,value,low', [('batch_size', '0', 1),
                                           ('num_workers', '-1', 0)])
def test_loader_counts_out_of_range_name_the_key(tiny, split, key, value, low,
                                                 capsys):
    """num_workers=-1 was torch's ValueError, naming no key."""
    tmp, config = tiny
    message = refusal(train_api.main, [
        config, '--work-dir',
        str(tmp / 'w'), '--cfg-options', f'{split}_dataloader.{key}={value}'
    ], capsys)
    assert message == (f'{split}_dataloader.{key}={value}: must be a whole '
                       f'number of at least {low} (--cfg-options '
                       f'{split}_dataloader.{key}=N).')


def test_max_epochs_that_train_nothing_are_refused(tiny, capsys):
    """-1 trained nothing and exited 0; 2.5 died in an assertion;
    val_interval=0 divided by zero after the first epoch."""
    tmp, config = tiny
    for key, value in (('max_epochs', '-1'), ('max_epochs', '0'),
                       ('max_epochs', '2.5'), ('val_interval', '0')):
        message = refusal(train_api.main, [
            config, '--work-dir',
            str(tmp / 'w'), '--cfg-options', f'train_cfg.{key}={value}'
        ], capsys)
        assert message == (
            f'train_cfg.{key}={float(value) if "." in value else value}'
            f': must be a whole number of at least 1. Set it in the config or '
            f'with --cfg-options train_cfg.{key}=N.')
    assert not [n for n in os.listdir(tmp / 'w') if n.endswith('.pth')]


def test_read_only_work_dir(tiny, tmp_path, capsys):
    _, config = tiny
    with small_tmpfs(tmp_path / 'ro', read_only=True) as mounted:
        if not mounted:  # not root: a folder without write permission
            os.chmod(tmp_path / 'ro', 0o500)
        work_dir = str(tmp_path / 'ro' / 'work')
        message = refusal(train_api.main, [config, '--work-dir', work_dir],
                          capsys)
        reason = 'Read-only file system' if mounted else 'Permission denied'
        assert message == (f'Work dir {work_dir} cannot be written ({reason})'
                           f': pass a folder on a writable file system.')


def test_device_latents_on_an_image_config_names_the_flag(
        tiny, tmp_path, capsys):
    # A config name of its own (see test_test_tool_checkpoint_missing_or_
    # remote): the refusal comes after mmengine has made the run's logger.
    config = shutil.copy(tiny[1], str(tmp_path / 'device_latents_images.py'))
    message = refusal(
        train_api.main,
        [config, '--work-dir',
         str(tmp_path / 'w'), '--device-latents'], capsys)
    assert message.startswith('device_resident needs a LatentDataset (a '
                              '*_latents.py config); this dataloader reads ')
    assert message.endswith('Remove device_resident (tools/train.py: '
                            '--device-latents).')


def test_work_dir_that_is_a_file(tiny, tmp_path, capsys):
    """Was 'cannot be written (File exists)', os.makedirs' words."""
    _, config = tiny
    (tmp_path / 'work').write_text('')
    (tmp_path / 'x.pth').write_text('')  # not read: the work dir comes first
    work_dir = str(tmp_path / 'work')
    for tool in (train_api.main, test_api.main):
        argv = [config] + ([str(tmp_path /
                                'x.pth')] if tool is test_api.main else [])
        assert refusal(tool, argv + ['--work-dir', work_dir], capsys) == (
            f'Work dir {work_dir} is a file, not a folder: pass a folder.')


def test_test_tool_out_that_is_a_folder_or_the_checkpoint(
        tiny, tmp_path, capsys):
    _, config = tiny
    ckpt = tmp_path / 'model.pkl'  # a checkpoint named like an --out
    torch.save({}, ckpt)
    (tmp_path / 'preds.pkl').mkdir()
    work = ['--work-dir', str(tmp_path / 'work')]
    out = str(tmp_path / 'preds.pkl')
    assert refusal(test_api.main,
                   [config, str(ckpt), '--out', out, *work],
                   capsys) == (f'--out {out} is a folder; refusing to write '
                               f'over it. Name a file instead.')
    message = refusal(test_api.main,
                      [config, str(ckpt), '--out',
                       str(ckpt), *work], capsys)
    assert message.startswith(f'--out {ckpt} is the input {ckpt} ')
    # --out-item without --out wrote nothing, silently (mmpretrain refuses)
    assert refusal(test_api.main,
                   [config, str(ckpt), '--out-item', 'metrics', *work],
                   capsys) == ('--out-item metrics: give --out FILE.pkl to '
                               'write it to.')


def test_test_tool_checkpoint_missing_or_remote(tiny, tmp_path, capsys):
    """A missing local file is refused up front; a URI goes to mmengine's
    loader as under mmpretrain's tools/test.py (was: refused as missing)."""
    # A config name of its own: mmengine names a run's logger after the
    # config and the second, and hands a same-named earlier logger (bound
    # to an earlier test's closed capture) to a runner built that second.
    config = shutil.copy(tiny[1], str(tmp_path / 'remote_checkpoint.py'))
    work = ['--work-dir', str(tmp_path / 'work')]
    missing = str(tmp_path / 'nope.pth')
    assert refusal(test_api.main, [config, missing, *work],
                   capsys) == f'Checkpoint {missing} does not exist.'
    assert refusal(test_api.main, [config, str(tmp_path), *work],
                   capsys) == f'Checkpoint {tmp_path} is not a file.'
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]
    url = f'http://127.0.0.1:{port}/ci2p.pth'  # refused at once, no hang
    message = refusal(test_api.main, [config, url, *work], capsys)
    assert message.startswith(f'Checkpoint {url} cannot be downloaded '
                              f'(URLError: '), message


def test_test_tool_writes_its_metrics_to_out(tiny, tmp_path):
    """``--out-item metrics``: the pickle holds what the test returned
    (written by mmengine.dump through the atomic local backend)."""
    _, config = tiny
    work = str(tmp_path / 'work')
    train_api.train([config, '--work-dir', work])
    out = tmp_path / 'metrics.pkl'
    metrics = test_api.test([
        config,
        osp.join(work, 'epoch_1.pth'), '--work-dir', work, '--out',
        str(out), '--out-item', 'metrics'
    ])
    with open(out, 'rb') as f:
        assert pickle.load(f) == metrics
    assert 'accuracy/top1' in metrics
    assert not [p for p in os.listdir(tmp_path) if 'ci2p-tmp' in p]


def test_converter_destination_folder(tmp_path, capsys):
    src = tmp_path / 'CvT-13.pth'
    src.write_bytes(b'weights')
    (tmp_path / 'out').mkdir()
    assert refusal(cvt.main, [str(src), str(tmp_path / 'out')], capsys) == (
        f'DST {tmp_path}/out is a folder; refusing to write over it. Name '
        f'a file instead.')
    assert src.read_bytes() == b'weights'


@pytest.mark.slow  # a training and a test run
def test_amp_on_the_cpu_trains_in_bf16(tiny, tmp_path):
    """``--amp`` died in mmengine's AmpOptimWrapper assertion (it needs a
    GPU); on the CPU it is bf16 autocast, no loss scaling."""
    _, config = tiny
    seen = []
    runner = train_api.train(
        [config, '--work-dir',
         str(tmp_path / 'amp'), '--amp'])
    wrapper = runner.optim_wrapper
    assert type(wrapper).__name__ == 'CPUAmpOptimWrapper'
    with wrapper.optim_context(runner.model):
        seen.append(torch.get_autocast_dtype('cpu'))
        seen.append(torch.is_autocast_enabled('cpu'))
    assert seen == [torch.bfloat16, True]
    assert osp.isfile(tmp_path / 'amp' / 'epoch_1.pth')
    metrics = test_api.test([
        config,
        str(tmp_path / 'amp' / 'epoch_1.pth'), '--amp', '--work-dir',
        str(tmp_path / 'test')
    ])
    assert 'accuracy/top1' in metrics
