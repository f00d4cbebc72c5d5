"""The OpenMMLab path end to end: prepare, train, test, resume, dist, plot."""
import json
import os
import os.path as osp
import pickle
import subprocess

import pytest
import torch
from conftest import REPO, free_port, run_tool, write_tiny_config

from ci2p_mm.datasets import ITALIAN_TO_ENGLISH, make_split

# Tools run as users run them, in subprocesses, with real trainings.
pytestmark = pytest.mark.slow


def fake_kaggle_folder(root, counts):
    """Kaggle's raw-img layout with mixed and upper-case extensions."""
    from PIL import Image
    raw = osp.join(root, 'raw-img')
    for (folder,
         n), ext in zip(counts.items(),
                        ['.jpeg', '.jpg', '.png', '.JPG', '.jpeg'] * 2):
        os.makedirs(osp.join(raw, folder))
        for i in range(n):
            Image.new('RGB', (8, 8), (i, 0, 0)).save(
                osp.join(raw, folder, f'img{i}{ext}'),
                format='PNG' if ext == '.png' else 'JPEG')
    return raw


def test_prepare_animals10_counts_and_determinism(tmp_path):
    counts = {
        folder: 10 + 3 * i
        for i, folder in enumerate(ITALIAN_TO_ENGLISH)
    }
    raw = fake_kaggle_folder(str(tmp_path), counts)
    (tmp_path / 'raw-img' / 'cane' / 'notes.txt').write_text('not an image')
    out = run_tool('tools/dataset_converters/prepare_animals10.py', raw,
                   str(tmp_path / 'a'), '--val-ratio', '0.2', '--seed', '3')
    assert 'dog' in out and 'Passed over 1 files' in out
    summary = json.load(open(tmp_path / 'a' / 'meta' / 'split.json'))
    for i, name in enumerate(ITALIAN_TO_ENGLISH.values()):
        n = 10 + 3 * i
        assert summary['counts'][name] == dict(
            train=n - round(n * 0.2), val=round(n * 0.2))
    train = (tmp_path / 'a' / 'meta' / 'train.txt').read_text()
    val = (tmp_path / 'a' / 'meta' / 'val.txt').read_text()
    assert not set(train.splitlines()) & set(val.splitlines())
    # Same folder, same seed: the same split; another seed: another one.
    make_split(raw, str(tmp_path / 'b'), 0.2, 3)
    make_split(raw, str(tmp_path / 'c'), 0.2, 4)
    assert (tmp_path / 'b' / 'meta' / 'val.txt').read_text() == val
    assert (tmp_path / 'c' / 'meta' / 'val.txt').read_text() != val
    # Labels follow the Italian folders' order; paths resolve from OUT_DIR.
    path, label = val.splitlines()[0].rsplit(' ', 1)
    assert osp.isfile(tmp_path / 'a' / path)
    assert list(ITALIAN_TO_ENGLISH)[int(label)] in path


def test_prepare_animals10_names_missing_folders(tmp_path):
    (tmp_path / 'raw-img' / 'cane').mkdir(parents=True)
    with pytest.raises(AssertionError, match="lacks the class folders"):
        run_tool('tools/dataset_converters/prepare_animals10.py',
                 str(tmp_path / 'raw-img'), str(tmp_path / 'out'))


def test_missing_data_says_where_it_looked_and_how_to_prepare(tmp_path):
    config = write_tiny_config(tmp_path, 'configs/ci2p_vit_animals10.py',
                               str(tmp_path / 'nowhere'))
    with pytest.raises(AssertionError) as info:
        run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'wd'),
                 '--cfg-options', 'model.backbone.patch_cfg.pretrained=False')
    message = str(info.value)
    assert osp.join('nowhere', 'meta', 'train.txt') in message
    assert 'prepare_animals10.py' in message and 'kaggle' in message
    assert 'train_dataloader.dataset.data_root=DIR' in message


def test_missing_data_under_a_latents_config_names_its_key(tmp_path):
    """A latents config sets the images' root on its LatentDataset's
    source: the advice names that key, not the image config's."""
    from ci2p_mm.datasets import DatasetNotPreparedError
    from ci2p_mm.latents import LatentDataset
    with pytest.raises(DatasetNotPreparedError) as info:
        LatentDataset(
            source=dict(
                type='Animals10',
                split='train',
                data_root=str(tmp_path / 'nowhere')),
            store='latents/s')
    assert ('--cfg-options train_dataloader.dataset.source.data_root=DIR'
            in str(info.value))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, toy_animals10):
    """Two epochs of tools/train.py on the toy data set."""
    tmp = tmp_path_factory.mktemp('train')
    config = write_tiny_config(
        tmp, 'configs/ci2p_vit_animals10.py', toy_animals10, epochs=2)
    work_dir = str(tmp / 'work')
    out = run_tool('tools/train.py', config, '--work-dir', work_dir,
                   '--cfg-options',
                   'model.backbone.patch_cfg.pretrained=False')
    return config, work_dir, out


def test_train_writes_checkpoints_and_logs(trained):
    config, work_dir, out = trained
    assert 'Epoch(train) [2]' in out and 'accuracy/top1' in out
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert osp.exists(osp.join(work_dir, name))


def test_test_tool_evaluates_the_checkpoint(trained, tmp_path):
    config, work_dir, _ = trained
    preds = str(tmp_path / 'preds.pkl')
    out = run_tool('tools/test.py', config,
                   osp.join(work_dir, 'epoch_2.pth'), '--work-dir',
                   str(tmp_path), '--out', preds, '--cfg-options',
                   'model.backbone.patch_cfg.pretrained=False')
    assert 'accuracy/top1:' in out
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 20  # 10 classes x 2 validation images
    assert all('pred_label' in r for r in results)


def test_resume_continues_from_the_checkpoint(trained, tmp_path):
    config, work_dir, _ = trained
    resumed = str(tmp_path / 'resumed')
    out = run_tool('tools/train.py', config, '--work-dir', resumed, '--resume',
                   osp.join(work_dir, 'epoch_1.pth'), '--cfg-options',
                   'model.backbone.patch_cfg.pretrained=False',
                   'train_cfg.max_epochs=3')
    assert 'resumed epoch: 1' in out
    assert 'Epoch(train) [1]' not in out and 'Epoch(train) [3]' in out
    ckpt = torch.load(osp.join(resumed, 'epoch_3.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 3


def test_plot_curves_writes_a_png(trained, tmp_path):
    _, work_dir, _ = trained
    png = str(tmp_path / 'curves.png')
    out = run_tool('tools/analysis_tools/plot_curves.py', work_dir, work_dir,
                   '--labels', 'a', 'b', '--out', png)
    assert 'best accuracy/top1' in out
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_dist_train_two_processes_on_cpu(tmp_path, toy_animals10):
    config = write_tiny_config(
        tmp_path, 'configs/ci2p_vit_animals10.py', toy_animals10, epochs=1)
    work_dir = str(tmp_path / 'dist')
    env = dict(os.environ, PORT=str(free_port()), PYTHON=os.sys.executable)
    proc = subprocess.run([
        'bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir,
        '--cfg-options', 'model.backbone.patch_cfg.pretrained=False'
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    output = proc.stdout + proc.stderr
    # torchrun exits 0 only when every rank did.
    assert proc.returncode == 0, output[-4000:]
    assert 'Distributed training: True' in output
    assert 'Epoch(train) [1]' in output and 'accuracy/top1' in output
    assert osp.exists(osp.join(work_dir, 'epoch_1.pth'))


def test_prepare_animals10_names_stray_folders_and_strict_refuses(
        tmp_path, capsys):
    from ci2p_mm.datasets.animals10 import main, prepare
    from ci2p_mm.utils.cli import run
    raw = fake_kaggle_folder(str(tmp_path), {f: 4 for f in ITALIAN_TO_ENGLISH})
    stray = tmp_path / 'raw-img' / 'unicorno'
    stray.mkdir()
    for i in range(3):
        (stray / f'u{i}.jpg').write_bytes(
            (tmp_path / 'raw-img' / 'cane' / 'img0.jpeg').read_bytes())
    (tmp_path / 'raw-img' / 'README.txt').write_text('downloaded from kaggle')
    summary = prepare([raw, str(tmp_path / 'out')])
    assert ('Left out of the split, not Animals-10 class folders: '
            'README.txt, unicorno/ (3 files)') in capsys.readouterr().out
    assert summary['left_out'] == {'README.txt': 1, 'unicorno/': 3}
    with open(tmp_path / 'out' / 'meta' / 'split.json') as f:
        assert json.load(f)['left_out'] == summary['left_out']
    listed = (tmp_path / 'out' / 'meta' / 'train.txt').read_text() + (
        tmp_path / 'out' / 'meta' / 'val.txt').read_text()
    assert 'unicorno' not in listed and len(listed.splitlines()) == 40
    with pytest.raises(SystemExit) as info:
        run(main, [raw, str(tmp_path / 'strict'), '--strict'])
    assert info.value.code == 2
    message = capsys.readouterr().err
    assert message.count('\n') == 1 and ': error: ' in message
    assert 'not one of the ten Animals-10 class folders' in message
    assert 'README.txt, unicorno/ (3 files)' in message
    assert not (tmp_path / 'strict' / 'meta').exists()


def test_demo_streams_progress_and_keeps_the_whole_log(tmp_path, capsys):
    """The demo shows a tool's progress lines (a codec run's validation
    lines among them) as they come, and keeps every line in the log."""
    from ci2p_mm import demo
    log = tmp_path / 'tool.log'
    child = ('import os; print("12/06 07:05:49 - mmengine - INFO - '
             'Iter(val) [4/4] codec/psnr: 17.0"); '
             'print("Iter(train) [10/400] quiet"); '
             'print("PSNR unbuffered:", os.environ.get("PYTHONUNBUFFERED"))')
    demo.run(['-c', child], str(log))
    shown = [
        line for line in capsys.readouterr().out.splitlines()
        if not line.startswith('  $ ')
    ]  # the command itself
    assert '    Iter(val) [4/4] codec/psnr: 17.0' in shown
    assert '    PSNR unbuffered: 1' in shown  # not held in a buffer
    assert len(shown) == 2
    assert 'Iter(train) [10/400] quiet' in log.read_text()
