"""Codec training on the project's runner, killed and stopped (issue 26);
data workers that outlive a SIGTERM their parent did not send.

Real ``tools/train_codec.py`` runs in subprocesses, on 32 px crops:

* reference: 24 iterations, uninterrupted, no data workers;
* the same killed with SIGKILL once its first checkpoint is written,
  resumed with ``--resume`` and two data workers, stopped with SIGTERM
  (sent to the process group, as slurm does) once it has saved again,
  and resumed once more;

the stopped run exits 143 with a checkpoint, and the final codec, its
validation metrics and both optimizers' states equal the reference's
(``torch.equal``): the data order, the random crops and the entropy
model's noise are all restored.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from _reliability import REPO
from conftest import make_codec_images

# mmengine's types in checkpoints, allow-listed for torch.load.
import ci2p_mm.engine  # noqa: F401,E402


def codec_run(images, work, *extra, workers=0):
    """Start ``tools/train_codec.py`` in a session of its own."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    args = [
        sys.executable, 'tools/train_codec.py',
        str(images), '--work-dir',
        str(work), '--quick', '--iters', '24', '--warmup-iters', '4',
        '--patch-size', '32', '--batch-size', '2', '--val-ratio', '0.25',
        '--val-interval', '6', '--log-interval', '3', '--device', 'cpu',
        '--num-workers',
        str(workers), *extra
    ]
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True)


def last_checkpoint(work):
    path = osp.join(work, 'last_checkpoint')
    return open(path).read().strip() if osp.exists(path) else None


def signal_after_a_new_checkpoint(proc, work, signum, timeout=600):
    """Send ``signum`` to ``proc``'s group once ``last_checkpoint`` points
    to a file it did not point to before; return the output."""
    before, start = last_checkpoint(work), time.time()
    while last_checkpoint(work) in (None, before):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() - start < timeout
        time.sleep(0.05)
    os.killpg(proc.pid, signum)
    out, _ = proc.communicate(timeout=timeout)
    return out


def finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def final_state(work):
    final = torch.load(osp.join(work, 'codec_final.pth'), weights_only=True)
    last = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=True)
    return final, last['optimizer']


def test_a_worker_outlives_a_sigterm_from_outside():
    """Slurm signals every process of the job: a data worker must leave the
    stop to the main process (torch's own handler would end the worker, and
    the main process would fail with 'DataLoader worker ... killed'); once
    training is over, a SIGTERM ends it (the exit must not hang)."""
    from torch.utils.data import TensorDataset

    from ci2p_mm.engine import CI2PRunner, StopSignals
    with StopSignals() as stop:
        loader = CI2PRunner.build_dataloader(
            dict(
                dataset=TensorDataset(torch.arange(100.)),
                batch_size=1,
                num_workers=1,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate')),
            seed=0)
        batches = iter(loader)
        assert next(batches)[0].item() == 0
        worker = batches._workers[0]
        subprocess.run(['kill', '-TERM', str(worker.pid)], check=True)
        time.sleep(1)
        assert worker.is_alive() and stop.signum is None
        assert [next(batches)[0].item() for _ in range(3)] == [1, 2, 3]
    # Training over: a SIGTERM (the loader's shutdown at exit) ends it.
    worker.terminate()
    worker.join(timeout=60)
    assert worker.exitcode == 0
    del batches


# Real trainings in subprocesses, killed and resumed: the slow tier.
@pytest.mark.slow
def test_sigkill_then_sigterm_then_resume_is_exact(tmp_path):
    images = make_codec_images(tmp_path / 'images', n=12, size=48)
    reference = tmp_path / 'reference'
    finish(codec_run(images, reference))

    work = tmp_path / 'work'
    proc = codec_run(images, work)
    signal_after_a_new_checkpoint(proc, work, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert not osp.exists(work / 'codec_final.pth')
    killed_at = last_checkpoint(work)
    assert osp.basename(killed_at).startswith('iter_')

    proc = codec_run(images, work, '--resume', workers=2)
    out = signal_after_a_new_checkpoint(proc, work, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    step = int(killed_at.rsplit('_', 1)[1].split('.')[0])
    assert f'resumed epoch: 0, iter: {step}' in out
    assert 'Stopped by SIGTERM at iteration' in out
    stopped_at = last_checkpoint(work)
    assert stopped_at != killed_at and osp.exists(stopped_at)
    assert not osp.exists(work / 'codec_final.pth')

    finish(codec_run(images, work, '--resume', workers=2))
    (final, optim), (expected, expected_optim) = (final_state(work),
                                                  final_state(reference))
    assert final['iter'] == expected['iter'] == 24
    weights, reference_weights = final['state_dict'], expected['state_dict']
    assert weights.keys() == reference_weights.keys()
    different = [
        k for k in weights if not torch.equal(weights[k], reference_weights[k])
    ]
    assert not different, different[:5]
    assert final['val'] == expected['val']
    assert final['train'].keys() == expected['train'].keys()
    for name in ('loss', 'bpp', 'psnr', 'aux_loss'):
        assert final['train'][name] == expected['train'][name]
    for name in ('net', 'aux'):
        for key, state in optim[name]['state'].items():
            reference_state = expected_optim[name]['state'][key]
            for buffer in ('exp_avg', 'exp_avg_sq'):
                assert torch.equal(state[buffer], reference_state[buffer])
