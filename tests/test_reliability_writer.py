"""The one atomic writer and its one lock, against hostile destinations.

Issue 27: items 2 (a device, a FIFO or ``/dev/stdout`` as DST was renamed
over), 9 (DST == SRC through a linked folder), 10 (a full disk gave torch's
``basic_ios::clear`` traceback), 15 (a folder as DST), and the temporaries
that a killed writer left for ever. Every writer of the project goes
through :func:`ci2p_mm.utils.io.atomic_output`, so it is tested here once;
the tools' own refusals are in tests/test_tool_clis.py.
"""
import errno
import os
import os.path as osp
import signal
import stat
import subprocess
import sys
import threading

import pytest
import torch
from _reliability import REPO, small_tmpfs

import ci2p_mm.utils.io as io
from ci2p_mm.engine import publish
from ci2p_mm.model_converters.common import convert_checkpoint
from ci2p_mm.model_converters.cvt import CVT
from ci2p_mm.utils.io import (OutputError, atomic_output, check_not_input,
                              load_torch_file, save_atomic,
                              write_text_atomically)


def test_regular_file_and_link_are_replaced_whole(tmp_path):
    target = tmp_path / 'real.json'
    write_text_atomically(str(target), 'old')
    link = tmp_path / 'link.json'
    link.symlink_to(target)
    write_text_atomically(str(link), 'new')
    assert link.is_symlink() and target.read_text() == 'new'
    save_atomic({'w': torch.ones(2)}, str(tmp_path / 'sub' / 'x.pth'))
    assert torch.equal(
        load_torch_file(str(tmp_path / 'sub' / 'x.pth'))['w'], torch.ones(2))
    assert sorted(os.listdir(tmp_path)) == ['link.json', 'real.json', 'sub']


def test_device_is_written_through_never_replaced():
    before = os.stat('/dev/null')
    write_text_atomically('/dev/null', 'x' * 1000)
    save_atomic({'w': torch.ones(3)}, '/dev/null')
    after = os.stat('/dev/null')
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


@pytest.mark.slow  # fresh interpreters
def test_dev_stdout_writes_into_the_pipe_or_file(tmp_path):
    code = ('from ci2p_mm.utils.io import write_text_atomically\n'
            'print("first", flush=True)\n'
            'write_text_atomically("/dev/stdout", "through\\n")\n'
            'print("last")\n')
    piped = subprocess.run([sys.executable, '-c', code],
                           cwd=REPO,
                           capture_output=True,
                           text=True,
                           check=True)
    assert piped.stdout == 'first\nthrough\nlast\n'
    log = tmp_path / 'log.txt'
    with open(log, 'w') as out:  # `tool --out /dev/stdout > log.txt`
        subprocess.run([sys.executable, '-c', code],
                       cwd=REPO,
                       stdout=out,
                       check=True)
    assert log.read_text() == 'first\nthrough\nlast\n'
    assert not [n for n in os.listdir(tmp_path) if n != 'log.txt']


def test_fifo_with_a_reader_gets_the_bytes_without_one_is_refused(tmp_path):
    fifo = str(tmp_path / 'pipe')
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match='a FIFO that no process reads'):
        write_text_atomically(fifo, 'nobody listens')  # (was: a hang)
    received = []
    reader = threading.Thread(
        target=lambda: received.append(open(fifo).read()))
    reader.start()
    while True:  # until the reader has the FIFO open
        try:
            write_text_atomically(fifo, 'data')
            break
        except OutputError:
            continue
    reader.join(10)
    assert received == ['data'] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_folder_destination_is_refused_naming_it(tmp_path):
    folder = tmp_path / 'models'
    (folder / 'keep').mkdir(parents=True)
    with pytest.raises(OutputError) as info:
        save_atomic({}, str(folder))
    assert str(info.value) == (f'Output {folder} is a folder; refusing to '
                               f'write over it. Name a file instead.')
    assert os.listdir(folder) == ['keep']


def test_same_file_through_a_linked_folder_is_refused(tmp_path):
    """The converters compared abspath: DST through a link to SRC's folder
    overwrote the authors' download."""
    downloads = tmp_path / 'downloads'
    downloads.mkdir()
    src = downloads / 'CvT-13-224x224-IN-1k.pth'
    src.write_bytes(b'the authors\' weights')
    (tmp_path / 'linked').symlink_to(downloads)
    dst = tmp_path / 'linked' / 'CvT-13-224x224-IN-1k.pth'
    with pytest.raises(OutputError) as info:
        convert_checkpoint(CVT, str(src), str(dst))
    assert str(info.value).startswith(f'DST {dst} is the input {src} ')
    assert src.read_bytes() == b'the authors\' weights'
    hard = tmp_path / 'hard.pth'
    os.link(src, hard)
    with pytest.raises(OutputError, match='is the input'):
        check_not_input(str(hard), str(src))
    check_not_input(str(tmp_path / 'new.pth'), str(src))  # fine


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a 256 KiB file system (as root); elsewhere a folder
    whose writes fail with ENOSPC after the first 256 KiB, as a full disk
    does (the writer's ``open`` is replaced)."""
    folder = tmp_path / 'full'
    with small_tmpfs(folder, 256 << 10) as mounted:
        if not mounted:

            def full_disk_open(path, mode='r', *args, **kwargs):
                f = open(path, mode, *args, **kwargs)
                if str(path).startswith(str(folder)) and 'w' in mode:
                    write = f.write
                    f.write = lambda data: write(data[:256 << 10]) and \
                        (_ for _ in ()).throw(
                            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
                return f

            monkeypatch.setattr(io, 'open', full_disk_open, raising=False)
        yield folder


def test_full_disk_is_one_line_with_path_and_size(full_disk):
    """Converters, publish_model and codec training save with save_atomic:
    torch serialises in memory, the writer fails with the size it needs
    (was: torch's ``basic_ios::clear`` / ``unexpected pos`` traceback)."""
    out = str(full_disk / 'converted.pth')
    with pytest.raises(OutputError) as info:
        save_atomic({'w': torch.zeros(256, 1024)}, out)  # 1 MiB
    message = str(info.value)
    assert message.startswith(
        f'No space left on device writing {out} (needs about 1.0 MiB')
    assert message.endswith('Free some space or write elsewhere.')
    assert ', 0.0 KiB free' not in message  # measured once the part is gone
    assert '\n' not in message and 'basic_ios' not in message
    assert os.listdir(full_disk) == []  # no partial file
    with pytest.raises(
            OutputError, match='No space left on device writing '
            '/dev/full'):
        write_text_atomically('/dev/full', 'x')


def test_publish_on_a_full_disk(tmp_path, full_disk):
    ckpt = str(tmp_path / 'epoch_1.pth')
    torch.save(
        dict(
            state_dict={'w': torch.zeros(256, 1024)},
            meta=dict(dataset_meta=dict(classes=('a', 'b')))), ckpt)
    with pytest.raises(
            OutputError,
            match=f'No space left on device '
            f'writing {full_disk}/model_'):
        publish.publish_checkpoint(ckpt, str(full_disk / 'model.pth'))
    assert os.listdir(full_disk) == []


HOLD_OR_DIE = '''
import os, signal, sys, time
from ci2p_mm.utils.io import atomic_output
with atomic_output(sys.argv[1]) as tmp:
    with open(tmp, 'wb') as f:
        f.write(b'half a checkpoint')
    print(tmp, flush=True)
    if sys.argv[2] == 'die':
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)
'''


def _writer(path, fate):
    proc = subprocess.Popen(
        [sys.executable, '-c', HOLD_OR_DIE,
         str(path), fate],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True)
    return proc, proc.stdout.readline().strip()


@pytest.mark.slow  # fresh interpreters
def test_temporaries_of_killed_writers_are_removed_live_ones_kept(tmp_path):
    """kill -9 of a converter (or a second SIGTERM during a save) left
    ``*.tmp*`` files for ever; the next write into that folder removes
    them, and nothing else."""
    killed, dead_tmp = _writer(tmp_path / 'a.pth', 'die')
    killed.wait()
    assert killed.returncode == -signal.SIGKILL and osp.exists(dead_tmp)
    live, live_tmp = _writer(tmp_path / 'b.pth', 'live')
    try:
        others = ['notes.tmp', 'a.pth.tmp', 'mine.ci2p-tmp']
        for name in others:
            (tmp_path / name).write_text('not the writer\'s')
        (tmp_path / 'mine.ci2p-tmp').chmod(0o200)  # unreadable: kept
        io._cleaned_dirs.discard(str(tmp_path))
        write_text_atomically(str(tmp_path / 'c.txt'), 'c')
        names = set(os.listdir(tmp_path))
        assert osp.basename(dead_tmp) not in names
        assert osp.basename(live_tmp) in names  # its writer lives
        assert set(others) | {'c.txt'} <= names
    finally:
        live.kill()
        live.wait()


def test_delete_the_temporary_to_write_nothing(tmp_path):
    out = tmp_path / 'model.onnx'
    out.write_text('previous')
    with atomic_output(str(out)) as tmp:
        with open(tmp, 'w') as f:
            f.write('failed its check')
        os.remove(tmp)
    assert out.read_text() == 'previous' and os.listdir(tmp_path) == [
        'model.onnx'
    ]
