"""Faults a long run meets (issue 13, item 4), on real training runs.

* a second ``tools/train.py`` on a work dir a live run holds is refused,
  naming that run; the lock a SIGKILLed run leaves does not block;
* ``--resume`` on an empty work dir starts fresh and says so in one line;
* SIGINT (Ctrl-C) and SIGTERM (slurm), sent to the whole process group as
  slurm does (data workers included), stop the run cleanly with a
  checkpoint, exit 130 / 143, and ``--resume`` continues exactly;
* the disk fills while a checkpoint is written: the run stops naming the
  file and the free space, the previous checkpoint stays intact, and
  ``--resume`` finishes the run with the weights of an uninterrupted one.
  On a real tmpfs when this process may mount one (root), else by making
  mmengine's file write fail with ENOSPC half way.

Tiny CI2P-ViT, 2 epochs of 6 iterations, random flips and drop path.
"""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
from _reliability import REPO, make_toy_data, write_config
from test_reliability_resume import assert_same, final_state

# Real trainings in subprocesses, killed and resumed: the slow tier.
pytestmark = pytest.mark.slow

FAULTS = '''
"""Test-only: signal this run's process group at an iteration; make the
write of one checkpoint fail with ENOSPC half way."""
import errno
import os
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ci2p_mm.engine import AtomicLocalBackend
from ci2p_mm.utils.io import atomic_output


@HOOKS.register_module()
class SignalAtIterationHook(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.iteration = int(os.environ.get('SIGNAL_AT_ITER', 0))
        self.signum = getattr(signal, os.environ.get('SIGNAL', 'SIGTERM'))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iteration:
            os.killpg(os.getpgid(0), self.signum)  # as slurm: all of us


_put = AtomicLocalBackend.put


def put(self, obj, filepath):
    target = os.environ.get('NO_SPACE_FOR')
    if target and os.path.basename(str(filepath)).startswith(target):
        with atomic_output(str(filepath), len(obj)) as tmp:
            with open(tmp, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)
    return _put(self, obj, filepath)


AtomicLocalBackend.put = put
'''

HOLD_LOCK = ("import sys, time; "
             "from ci2p_mm.engine import work_dir_lock; "
             "held = work_dir_lock(sys.argv[1]).acquire(); "
             "print('held', flush=True); time.sleep(600)")


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('faults')
    root = make_toy_data(tmp / 'data', 4, 64, 0.25)  # 6 batches of 5
    with open(tmp / 'ci2p_test_faults.py', 'w') as f:
        f.write(FAULTS)
    extra = ("custom_imports = dict(imports=['ci2p_mm', 'ci2p_test_faults'],"
             " allow_failed_imports=False)\n"
             "default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))\n"
             "custom_hooks = [dict(type='NonFiniteLossHook'), "
             "dict(type='SkippedImagesHook'), "
             "dict(type='SignalAtIterationHook')]\n")
    configs = {
        name:
        write_config(
            tmp, root, name=f'{name}.py', num_workers=workers, extra=extra)
        for name, workers in (('reference', 0), ('workers', 2))
    }
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONPATH=str(tmp) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return tmp, configs, env


def train(config, work_dir, env, *extra, **env_extra):
    """``tools/train.py`` in its own process group (like a slurm step)."""
    proc = subprocess.run([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), *extra
    ],
                          cwd=REPO,
                          env=dict(env, **env_extra),
                          capture_output=True,
                          text=True,
                          timeout=600,
                          start_new_session=True)
    return proc.returncode, proc.stdout + proc.stderr


def test_second_run_refused_stale_lock_and_empty_resume(setup):
    tmp, configs, env = setup
    work = tmp / 'reference'
    holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK,
                               str(work)],
                              cwd=REPO,
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        code, out = train(configs['reference'], work, env)
        assert code != 0
        assert (f'Work dir {work} is in use by another training run: pid '
                f'{holder.pid} on host') in out
        assert 'pass another --work-dir' in out
        assert not any(n.endswith('.pth') for n in os.listdir(work))
    finally:
        holder.kill()  # SIGKILL: the lock file stays, the lock goes
        holder.wait()
    assert osp.exists(work / 'train.lock')

    code, out = train(configs['reference'], work, env, '--resume')
    assert code == 0, out[-3000:]
    said = [
        line for line in out.splitlines()
        if '--resume: no checkpoint in' in line
    ]
    assert len(said) == 1 and 'starting from the beginning' in said[0]
    assert f'{osp.basename(sys.executable)} tools/train.py' in (
        work / 'train.lock').read_text()


def _mount_tmpfs(path, size_bytes, remount=False):
    opts = f'{"remount," if remount else ""}size={size_bytes}'
    return subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs',
         str(path)],
        capture_output=True).returncode == 0


def _used(path):
    return sum(
        osp.getsize(osp.join(r, n)) for r, _, files in os.walk(path)
        for n in files)


def test_signals_and_full_disk_then_resume_is_exact(setup):
    tmp, configs, env = setup
    if not osp.exists(tmp / 'reference' / 'epoch_2.pth'):
        code, out = train(configs['reference'], tmp / 'reference', env)
        assert code == 0, out[-3000:]
    reference = final_state(tmp / 'reference')
    work = tmp / 'faulty'

    # 1. Ctrl-C after the last batch of epoch 1 (before its checkpoint).
    code, out = train(
        configs['workers'], work, env, SIGNAL='SIGINT', SIGNAL_AT_ITER='6')
    assert code == 128 + signal.SIGINT, out[-3000:]
    assert f'Stopped by SIGINT at iteration 6 (epoch 1); saved ' \
        f'{work}/iter_6.pth. Continue with --resume.' in out
    assert (work / 'last_checkpoint').read_text().endswith('iter_6.pth')
    assert not osp.exists(work / 'epoch_1.pth')

    # 2. Resume; slurm's SIGTERM in the middle of epoch 2.
    code, out = train(
        configs['workers'],
        work,
        env,
        '--resume',
        SIGNAL='SIGTERM',
        SIGNAL_AT_ITER='9')
    assert code == 128 + signal.SIGTERM, out[-3000:]
    assert 'resumed epoch: 0, iter: 6' in out
    assert 'Stopped by SIGTERM at iteration 9 (epoch 2)' in out
    names = sorted(os.listdir(work))
    assert 'epoch_1.pth' in names and 'iter_9.pth' in names
    assert 'iter_6.pth' not in names

    # 3. Resume; the disk fills while epoch_2.pth is written.
    ckpt_size = osp.getsize(work / 'iter_9.pth')
    full = tmp / 'full'
    full.mkdir()
    tmpfs = _mount_tmpfs(full, _used(work) + ckpt_size // 2)
    try:
        if tmpfs:
            shutil.copytree(work, full / 'work')
            work = full / 'work'
            (work / 'last_checkpoint').write_text(str(work / 'iter_9.pth'))
            code, out = train(configs['workers'], work, env, '--resume')
        else:  # not allowed to mount: the write fails as on a full disk
            code, out = train(
                configs['workers'],
                work,
                env,
                '--resume',
                NO_SPACE_FOR='epoch_2.pth')
        print(f'disk full: {"tmpfs" if tmpfs else "simulated ENOSPC"}')
        assert code != 0
        message = next(line for line in out.splitlines()
                       if 'Could not save checkpoint' in line)
        print(message)
        assert message.startswith(
            f'train.py: error: Could not save checkpoint epoch_2.pth: No '
            f'space left on device writing {work}/epoch_2.pth (needs about ')
        assert ' MiB free). Free some space or write elsewhere.' in message
        assert (f'the previous checkpoint, {work}/iter_9.pth, is intact: '
                f'continue with --resume' in message)
        names = sorted(os.listdir(work))
        assert not [n for n in names if n.startswith('epoch_2.pth')]
        assert (work / 'last_checkpoint').read_text().endswith('iter_9.pth')

        # 4. Space again: --resume ends where the uninterrupted run ended.
        if tmpfs:
            assert _mount_tmpfs(full, 256 << 20, remount=True)
        code, out = train(configs['workers'], work, env, '--resume')
        assert code == 0, out[-3000:]
        assert 'resumed epoch: 1, iter: 9' in out
        assert_same(final_state(work), reference)
    finally:
        if tmpfs:
            for _ in range(10):  # a log file may still be closing
                if subprocess.run(['umount', str(full)]).returncode == 0:
                    break
                time.sleep(0.5)
