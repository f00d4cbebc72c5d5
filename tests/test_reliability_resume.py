"""Exact resume after SIGKILL, also mid-epoch and while saving.

Issue 6, point 4. Real subprocess training runs of a tiny CI2P-ViT with
random flips and drop path, so the data order, the augmentation and the
model's random draws must all be restored:

* reference: 2 epochs of 6 iterations, uninterrupted;
* the same killed with SIGKILL after iteration 9 (mid-epoch 2; the last
  checkpoint is the mid-epoch iter_8.pth), resumed with ``--resume``, killed
  again with SIGKILL while epoch_2.pth is half written (``max_keep_ckpts=1``:
  mmengine would have deleted epoch_1.pth first), and resumed again;

and the final weights and optimizer state must equal the reference's
(``torch.equal``). The resumed runs use two persistent data workers where
the reference used none: the per-sample seeding makes that irrelevant.
"""
import os
import os.path as osp
import signal

import pytest
import torch
from _reliability import make_toy_data, run, write_config

from ci2p_mm.utils.io import TMP_MARK, find_resumable_checkpoint

# Real trainings in subprocesses, killed and resumed: the slow tier.
pytestmark = pytest.mark.slow

KILLER = '''
"""Test-only: SIGKILL this process at an iteration, or while saving."""
import os
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ci2p_mm.engine import AtomicLocalBackend
from ci2p_mm.utils.io import atomic_output


@HOOKS.register_module()
class KillAtIterationHook(Hook):
    priority = 'LOWEST'  # after the checkpoint hook

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


_put = AtomicLocalBackend.put
_target = os.environ.get('KILL_WHILE_SAVING')


def put(self, obj, filepath):
    if _target and os.path.basename(str(filepath)).startswith(_target):
        with atomic_output(str(filepath)) as tmp:  # half the file, then die
            with open(tmp, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return _put(self, obj, filepath)


AtomicLocalBackend.put = put
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    # 40 images: 30 train (6 batches of 5), 10 val.
    root = make_toy_data(tmp / 'data', 4, 64, 0.25)
    with open(tmp / 'ci2p_test_killer.py', 'w') as f:
        f.write(KILLER)
    hooks = ("custom_imports = dict(imports=['ci2p_mm', 'ci2p_test_killer'],"
             " allow_failed_imports=False)\n"
             "default_hooks = dict(checkpoint=dict(iter_interval=2, "
             "max_keep_ckpts=1))\n")
    configs = {}
    for name, workers, extra in (('reference', 0, ''), (
            'kill_at_9', 0, "custom_hooks = [dict(type='NonFiniteLossHook'),"
            " dict(type='SkippedImagesHook'), "
            "dict(type='KillAtIterationHook', iteration=9)]\n"), ('resume', 2,
                                                                  '')):
        configs[name] = write_config(
            tmp,
            root,
            name=f'{name}.py',
            num_workers=workers,
            extra=hooks + extra)
    env = dict(
        os.environ,
        PYTHONPATH=str(tmp) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return tmp, configs, env


def train(config, work_dir, env, *extra):
    return run(['tools/train.py', config, '--work-dir',
                str(work_dir), *extra],
               env=env,
               check=False)


def final_state(work_dir):
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)
    return ckpt['state_dict'], ckpt['optimizer']['state'], ckpt['meta']


def assert_same(a, b):
    (weights_a, optim_a, meta_a), (weights_b, optim_b, meta_b) = a, b
    assert weights_a.keys() == weights_b.keys()
    different = [
        k for k in weights_a if not torch.equal(weights_a[k], weights_b[k])
    ]
    assert not different, f'{len(different)} tensors differ: {different[:5]}'
    for key in optim_a:
        for name in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(optim_a[key][name], optim_b[key][name])
    assert (meta_a['epoch'], meta_a['iter']) == (meta_b['epoch'],
                                                 meta_b['iter']) == (2, 12)


def test_sigkill_mid_epoch_and_while_saving_then_resume_is_exact(setup):
    tmp, configs, env = setup
    code, out = train(configs['reference'], tmp / 'reference', env)
    assert code == 0, out[-3000:]
    reference = final_state(tmp / 'reference')

    # 1. SIGKILL after iteration 9 of 12: mid-epoch 2, after iter_8.pth.
    work = tmp / 'killed[1]'  # a glob pattern: the folder is escaped
    code, out = train(configs['kill_at_9'], work, env)
    assert code == -signal.SIGKILL, out[-3000:]
    assert not osp.exists(work / 'epoch_2.pth')
    with open(work / 'last_checkpoint') as f:
        assert f.read().endswith('iter_8.pth')

    # 2. Resume (with 2 data workers), and SIGKILL again while epoch_2.pth
    #    is half written.
    code, out = train(configs['resume'], work,
                      dict(env, KILL_WHILE_SAVING='epoch_2.pth'), '--resume')
    assert code == -signal.SIGKILL, out[-3000:]
    assert 'resumed epoch: 1, iter: 8' in out
    assert 'Resuming inside epoch 2: its first 2 batches were trained' in out
    names = sorted(os.listdir(work))
    left = [n for n in names if n.startswith(f'epoch_2.pth{TMP_MARK}')]
    assert len(left) == 1 and 'epoch_2.pth' not in names
    # max_keep_ckpts=1: mmengine would have deleted epoch_1.pth already.
    assert 'epoch_1.pth' in names and 'iter_10.pth' in names
    with open(work / 'last_checkpoint') as f:
        assert f.read().endswith('iter_10.pth')

    # 3. Resume again: it ends where the uninterrupted run ended.
    code, out = train(configs['resume'], work, env, '--resume')
    assert code == 0, out[-3000:]
    assert 'resumed epoch: 1, iter: 10' in out
    assert_same(final_state(work), reference)
    leftovers = [
        n for n in os.listdir(work)
        if n.startswith('iter_') or TMP_MARK in n or n == 'epoch_1.pth'
    ]
    # Mid-epoch files go once epoch 2 is saved; the killed save's
    # temporary when the resumed run writes its first file.
    assert not leftovers


def test_resume_falls_back_when_last_checkpoint_is_broken(tmp_path):
    tmp_path = tmp_path / 'run[1]'  # a glob pattern: the folder is escaped
    tmp_path.mkdir()
    good = tmp_path / 'epoch_1.pth'
    torch.save({'x': torch.zeros(1)}, good)
    broken = tmp_path / 'epoch_2.pth'
    broken.write_bytes(good.read_bytes()[:20])  # e.g. a non-atomic writer
    os.utime(good, (1, 1))
    (tmp_path / 'last_checkpoint').write_text(str(broken))
    assert find_resumable_checkpoint(str(tmp_path)) == str(good)
    (tmp_path / 'last_checkpoint').write_text('')  # killed mid-write
    assert find_resumable_checkpoint(str(tmp_path)) == str(good)
    (tmp_path / 'best_accuracy_top1_epoch_9.pth').write_bytes(
        good.read_bytes())
    assert find_resumable_checkpoint(str(tmp_path)) == str(good)
    for pointer in (b'\xff\xfe/work/epoch_2.pth', b'\0' * 64,
                    b'x' * 100000):  # not UTF-8, NUL-filled, not a path
        (tmp_path / 'last_checkpoint').write_bytes(pointer)
        notes = []
        assert find_resumable_checkpoint(str(tmp_path), notes) == str(good)
        assert 'resuming from' in notes[0]
    os.remove(good)
    assert find_resumable_checkpoint(str(tmp_path)) is None
