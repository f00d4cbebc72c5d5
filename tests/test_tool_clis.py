"""The command lines under tools/ that only parse and call the package.

The logic is tested through the package modules (test_codec_training,
test_codec_report, test_speed_paths, ...); here each thin CLI is run as a
user runs it, in a fresh interpreter, to show that it parses, calls, and
turns a user error into one line; their parsers' range checks are run
in-process.
"""
import importlib
import os.path as osp
import subprocess
import sys

import pytest
from conftest import (REPO, codec_train_args, make_codec_images, run_tool,
                      write_tiny_config)

# Every test starts a fresh interpreter (a tool as users run it).
pytestmark = pytest.mark.slow


def run_failing(*args):
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip().splitlines()


def argparse_refusal(module, argv, capsys):
    """stderr of ``module.parse_args(argv)`` (or ``main``), which must stop
    with argparse's usage-error status 2."""
    tool = importlib.import_module(module)
    with pytest.raises(SystemExit) as exit_:
        (getattr(tool, 'parse_args', None) or tool.main)(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_train_codec_cli_trains_and_reports(tmp_path):
    images = make_codec_images(tmp_path / 'images', n=8)
    out = run_tool('tools/train_codec.py',
                   *codec_train_args(images, tmp_path / 'w', 4))
    assert osp.isfile(tmp_path / 'w' / 'codec_final.pth')
    assert 'Saved' in out
    report = run_tool('tools/analysis_tools/codec_report.py',
                      str(tmp_path / 'w' / 'codec_final.pth'), str(images),
                      '--out-dir', str(tmp_path / 'report'))
    assert osp.isfile(tmp_path / 'report' / 'report.csv')
    assert 'bpp' in report


@pytest.mark.parametrize(
    'tool', ['tools/train_codec.py', 'tools/analysis_tools/codec_report.py'])
def test_codec_clis_turn_user_errors_into_one_line(tool, tmp_path):
    if tool.endswith('train_codec.py'):
        missing = 'no_such_folder'
        args = [str(tmp_path / missing), '--work-dir', str(tmp_path / 'w')]
    else:
        missing = 'no_such_codec.pth'
        images = make_codec_images(tmp_path / 'images', n=1)
        args = [
            str(tmp_path / missing),
            str(images), '--out-dir',
            str(tmp_path / 'r')
        ]
    last = run_failing(tool, *args)[-1]
    assert last.startswith(f'{osp.basename(tool)}: error: ')
    assert missing in last


@pytest.mark.parametrize('tool', [
    'tools/run_demo.py', 'tools/analysis_tools/benchmark.py',
    'tools/analysis_tools/downstream_timing.py',
    'tools/dataset_converters/encode_latents.py'
])
def test_clis_parse_their_options(tool):
    out = run_tool(tool, '--help')
    assert out.startswith('usage: ') and '--' in out


def test_verify_dataset_cli_checks_a_config(toy_animals10, tmp_path):
    config = write_tiny_config(tmp_path, 'configs/ci2p_vit_animals10.py',
                               toy_animals10)
    out = run_tool('tools/misc/verify_dataset.py', config, '--workers', '1')
    assert 'All images decode.' in out
    assert 'train Animals10: 40 images, 0 bad' in out


@pytest.mark.parametrize('module,argv', [
    ('ci2p_mm.demo', ['--epochs', '0']),
    ('ci2p_mm.demo', ['--images-per-class', '1']),
    ('ci2p_mm.demo', ['--codec-iters', '0']),
    ('ci2p_mm.datasets.verify', ['c.py', '--workers', '0']),
    ('ci2p_mm.analysis.benchmark', ['c.py', '--img-size', '0']),
    ('ci2p_mm.analysis.benchmark', ['c.py', '--iters', '0']),
    ('ci2p_mm.analysis.benchmark', ['c.py', '--profile-steps', '0']),
    ('ci2p_mm.analysis.benchmark', ['c.py', '--profile-top', '-1']),
    ('ci2p_mm.analysis.downstream_timing', ['--det-size', '0', '512']),
    ('ci2p_mm.deployment.benchmark_onnx', ['c.py', '--shape', '0', '0']),
    ('ci2p_mm.codec.report',
     ['c.pth', 'd', '--out-dir', 'o', '--max-images', '-1']),
    ('ci2p_mm.codec.report',
     ['c.pth', 'd', '--out-dir', 'o', '--max-panels', '-1']),
])
def test_counts_and_sizes_out_of_range_are_usage_errors(module, argv, capsys):
    """Each ended in a traceback (a zero division, an empty tensor's min,
    an empty profile), ran minutes first (the demo's codec training), or
    silently dropped the last image (--max-images -1 as a slice end)."""
    flag = next(
        a for a in argv if a.startswith('--') and a not in ('--out-dir', ))
    assert f'argument {flag}: must be >= ' in argparse_refusal(
        module, argv, capsys)


@pytest.mark.parametrize('script,given', [('dist_train.sh', ['c.py']),
                                          ('dist_test.sh', ['c.py', 'x.pth']),
                                          ('slurm_train.sh', ['p', 'j', 'c']),
                                          ('slurm_test.sh', [])])
def test_launch_scripts_print_their_usage(script, given):
    """Too few arguments: the script's usage, not torchrun's traceback
    ('Unsupported nproc_per_node value') or an srun of empty values."""
    proc = subprocess.run(['bash', f'tools/{script}', *given],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith('usage: ') and f'tools/{script} ' in \
        proc.stderr
    assert not proc.stdout


@pytest.mark.parametrize('module,argv', [
    ('ci2p_mm.codec.training', ['imgs', '--work-dir', 'w']),
    ('ci2p_mm.codec.report', ['c.pth', 'imgs', '--out-dir', 'o']),
    ('ci2p_mm.latents.encoding', ['c.py']),
    ('ci2p_mm.inference', ['a.png', 'c.py', 'x.pth']),
])
def test_device_options_take_only_devices_this_machine_has(
        module, argv, monkeypatch, capsys):
    """--device cuda on a machine without it was torch's 'Found no NVIDIA
    driver' traceback at the first tensor moved (after the data was read
    and the model built). One CUDA device is pretended: no GPU is needed."""
    import torch
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    parse = importlib.import_module(module).parse_args
    assert parse(argv + ['--device', 'cuda:0']).device == 'cuda:0'
    for device, why in (('cuda:1', 'cuda:1: this machine has 1 CUDA device'),
                        ('gpu', 'Expected one of')):
        assert f'argument --device: {why}' in argparse_refusal(
            module, argv + ['--device', device], capsys)


@pytest.mark.parametrize('module,argv', [
    ('ci2p_mm.analysis.benchmark', ['c.py']),
    ('ci2p_mm.analysis.downstream_timing', []),
    ('ci2p_mm.deployment.benchmark_onnx', ['c.py']),
    ('ci2p_mm.analysis.lever_table', ['r.json']),
    ('ci2p_mm.analysis.plot_curves', ['work_dir']),
    ('ci2p_mm.datasets.verify', ['c.py']),
])
def test_an_out_that_is_a_folder_is_refused_before_the_work(
        module, argv, tmp_path, capsys):
    """benchmark.py measured for minutes, verify_dataset.py decoded every
    image, then each refused a folder --out."""
    assert (f'argument --out: Output {tmp_path} is a folder; refusing to '
            f'write over it.') in argparse_refusal(
                module, argv + ['--out', str(tmp_path)], capsys)


def test_plot_curves_refuses_a_format_matplotlib_cannot_write(capsys):
    from ci2p_mm.analysis import plot_curves

    # named before any log is looked for
    err = argparse_refusal('ci2p_mm.analysis.plot_curves',
                           ['no_such_work_dir', '--out', 'c.xyz'], capsys)
    assert '--out c.xyz: matplotlib writes ' in err and 'png' in err
    assert plot_curves.parse_args(['w', '--out', 'c.PDF']).out == 'c.PDF'
