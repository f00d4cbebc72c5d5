"""``benchmark.py --profile`` and ``--report-sdpa``: where a step's time goes.

After the timed repeats, the step mode (:mod:`.step`, per model and mode)
and the end-to-end mode (:mod:`.end_to_end`, per config, data loading
included) run ``--profile-steps`` more iterations under
``torch.profiler`` and summarise them from the profiler's own
``key_averages()`` (its table is printed, ``--profile-top`` rows):

* **CUDA**: the kernels by device time, how many kernels an iteration
  launches and the CPU time spent in the launch calls (``cudaLaunchKernel``
  and kin), the CPU time blocked waiting for the GPU (synchronize calls),
  and what torch does not give: the share of the iteration's wall time in
  which the GPU runs a kernel, copy or memset (the union of their
  intervals: *busy*; the rest is *idle*). A launch-bound step shows a low
  busy share with launch time close to the wall time.
* **CPU**: the share of the wall time inside ATen operators (self time)
  and the rest (Python, mmengine, dispatch: *framework*), the operators by
  self time.
* Both: ATen operators per iteration (every thread), the time waiting for
  the next batch (end to end: ``next(loader)``), and which
  ``scaled_dot_product_attention`` implementation ran (:data:`SDPA_OPS`).

``--report-sdpa`` runs only the last item: one step per model and mode
under a CPU-only profiler (cheap), to say which attention kernel each
model uses (flash, memory-efficient, cuDNN or the unfused math path).

Each iteration runs inside a ``record_function`` range (and, end to end,
the data wait inside another), and ends with a device synchronisation, as
the timed iterations do. The profiler adds overhead of its own: shares and
counts are what it is for; take speeds from the timed repeats.
"""
import os.path as osp
from typing import Callable, Dict, Iterable, List

import torch
from torch.autograd import DeviceType
from torch.autograd.profiler_util import EventList
from torch.profiler import ProfilerActivity, record_function

from ci2p_mm.utils.cli import at_least
from .timing import synchronize

#: ``record_function`` names of one iteration and of its data wait.
STEP_RANGE = 'ci2p::iteration'
DATA_RANGE = 'ci2p::data_wait'
#: The ATen operators behind ``F.scaled_dot_product_attention``.
SDPA_OPS = {
    'aten::_scaled_dot_product_flash_attention':
    'flash (CUDA)',
    'aten::_scaled_dot_product_flash_attention_for_cpu':
    'flash (CPU)',
    'aten::_scaled_dot_product_efficient_attention':
    'memory-efficient (CUDA)',
    'aten::_scaled_dot_product_cudnn_attention':
    'cuDNN',
    'aten::_scaled_dot_product_attention_math':
    'math (unfused matmul + softmax)',
    'aten::_scaled_dot_product_fused_attention_overrideable':
    'fused (device backend)',
}
#: CUDA runtime/driver calls that put work on the GPU.
LAUNCH_CALLS = ('cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel',
                'cuLaunchKernelEx', 'cudaGraphLaunch', 'cudaMemcpyAsync',
                'cudaMemsetAsync', 'cudaLaunchCooperativeKernel')
#: CUDA calls in which the CPU waits for the GPU.
SYNC_CALLS = ('cudaDeviceSynchronize', 'cudaStreamSynchronize',
              'cudaEventSynchronize', 'cudaStreamWaitEvent')


def add_arguments(parser):
    group = parser.add_argument_group('--profile, --report-sdpa')
    add = group.add_argument
    add('--profile',
        action='store_true',
        help='after timing, profile --profile-steps iterations of every '
        'model with torch.profiler and print a summary (GPU busy/idle '
        'share, top kernels or operators, launch time, data wait, SDPA '
        'kernel); see ci2p_mm/analysis/profile.py')
    add('--profile-steps',
        type=at_least(1),
        default=3,
        help='iterations per profile')
    add('--profile-top',
        type=at_least(0),
        default=8,
        help='kernels (CUDA) or operators (CPU) listed')
    add('--profile-trace-dir',
        help='also write each profile as a Chrome trace here')
    add('--report-sdpa',
        action='store_true',
        help='say which scaled_dot_product_attention kernel each model '
        'runs (flash, memory-efficient, cuDNN, math), from one profiled '
        'step per model and mode')


def is_annotation(event) -> bool:
    """A ``record_function`` range (kineto also draws each on the GPU's
    timeline, spanning its kernels: not a kernel)."""
    return bool(getattr(event, 'is_user_annotation', False)) or \
        event.key in (STEP_RANGE, DATA_RANGE)


def union_us(intervals: Iterable) -> float:
    """Total length of the union of ``(start, end)`` intervals."""
    total, reach = 0.0, float('-inf')
    for start, end in sorted(intervals):  # the part past what is counted
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def sdpa_kernels(names: Iterable[str]) -> List[str]:
    """The SDPA implementations among operator names, in order seen."""
    return list(dict.fromkeys(SDPA_OPS[n] for n in names if n in SDPA_OPS))


def summarize(events: EventList,
              steps: int,
              device: str,
              top: int = 8) -> Dict:
    """The summary of :data:`STEP_RANGE` iterations (see the module
    docstring) from a profile's events (``prof.events()``)."""
    rows = events.key_averages()
    host = [r for r in rows if r.device_type == DeviceType.CPU]
    by_name = {r.key: r for r in host}
    if STEP_RANGE not in by_name:
        raise ValueError(f'no {STEP_RANGE} ranges in the profile')
    per = 1e-3 / steps  # microseconds in total -> milliseconds per step

    def total_ms(names) -> float:
        return sum(by_name[n].cpu_time_total
                   for n in names if n in by_name) * per

    wall = by_name[STEP_RANGE].cpu_time_total
    ops = [r for r in host if r.key.startswith('aten::')]
    summary = dict(
        steps=steps,
        device=device,
        wall_ms_per_step=wall * per,
        data_wait_ms_per_step=total_ms([DATA_RANGE]),
        aten_ops_per_step=sum(r.count for r in ops) / steps,
        sdpa=sdpa_kernels(r.key for r in host))
    if device == 'cuda':
        # What torch does not give: the GPU's busy share of the iterations.
        iterations = [
            e for e in events
            if e.name == STEP_RANGE and e.device_type == DeviceType.CPU
        ]
        start = min(e.time_range.start for e in iterations)
        end = max(e.time_range.end for e in iterations)
        kernels = [(max(e.time_range.start, start), min(e.time_range.end, end))
                   for e in events
                   if e.device_type != DeviceType.CPU and not is_annotation(e)
                   and e.time_range.end > start and e.time_range.start < end]
        busy = union_us(kernels)
        ranked = [
            r for r in rows
            if r.device_type != DeviceType.CPU and not is_annotation(r)
        ]
        summary.update(
            kernels_per_step=len(kernels) / steps,
            device_busy_ms_per_step=busy * per,
            device_busy_share=busy / wall if wall else 0.0,
            device_idle_share=1 - busy / wall if wall else 0.0,
            launch_calls_per_step=sum(by_name[n].count
                                      for n in LAUNCH_CALLS if n in by_name) /
            steps,
            launch_ms_per_step=total_ms(LAUNCH_CALLS),
            sync_wait_ms_per_step=total_ms(SYNC_CALLS),
            sdpa_device_kernels=sorted({
                r.key[:80]
                for r in ranked
                if any(k in r.key.lower()
                       for k in ('flash', 'fmha', 'sdpa', 'attention'))
            }))
        basis, sort_by = busy, 'self_device_time_total'
    else:
        op_us = sum(r.self_cpu_time_total for r in ops)
        summary.update(
            op_ms_per_step=op_us * per,
            op_share=op_us / wall if wall else 0.0,
            framework_share=1 - op_us / wall if wall else 0.0)
        basis, sort_by, ranked = op_us, 'self_cpu_time_total', ops
    summary['top'] = [
        dict(
            name=r.key,
            ms_per_step=getattr(r, sort_by) * per,
            calls_per_step=r.count / steps,
            share=getattr(r, sort_by) / basis if basis else 0.0)
        for r in sorted(ranked, key=lambda r: -getattr(r, sort_by))[:top]
    ]
    # torch's table without the ranges (on CUDA kineto copies each onto
    # the GPU's timeline, where it would outrank the kernels it spans)
    summary['table'] = EventList(
        [r for r in rows if not is_annotation(r)],
        use_device='cuda' if device == 'cuda' else None).table(
            sort_by=sort_by, row_limit=top)
    return summary


def profile_iterations(run_iteration: Callable[[], None],
                       args,
                       name: str,
                       tag: str = '') -> Dict:
    """Profile ``args.profile_steps`` iterations and summarise them
    (``--profile-trace-dir``: also a Chrome trace per profile)."""
    activities = [ProfilerActivity.CPU]
    if args.device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    synchronize(args.device)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.profile_steps):
            with record_function(STEP_RANGE):
                run_iteration()
                synchronize(args.device)
    if args.profile_trace_dir:
        safe = ''.join(c if c.isalnum() or c in '-_.' else '_'
                       for c in f'{name}{tag}')
        prof.export_chrome_trace(
            osp.join(args.profile_trace_dir, f'{safe}.trace.json'))
    return summarize(prof.events(), args.profile_steps, args.device,
                     args.profile_top)


def report_sdpa(run_step: Callable[[], None]) -> List[str]:
    """The SDPA implementations one step runs (CPU-side operator names,
    which name the backend on CUDA too)."""
    with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
        run_step()
    return sdpa_kernels(e.name for e in prof.events()) or [
        'none seen (no scaled_dot_product_attention operator)'
    ]


def format_summary(title: str, summary: Dict) -> str:
    """A few lines of text for one summary, then torch's table."""
    s = summary
    lines = [
        f'-- profile: {title} ({s["steps"]} iterations, '
        f'{s["device"]})',
        f'   wall {s["wall_ms_per_step"]:.2f} ms/it; data wait '
        f'{s["data_wait_ms_per_step"]:.2f} ms/it; '
        f'{s["aten_ops_per_step"]:.0f} ATen ops/it'
    ]
    if s['device'] == 'cuda':
        lines.append(
            f'   GPU busy {100 * s["device_busy_share"]:.0f}% '
            f'({s["device_busy_ms_per_step"]:.2f} ms/it), idle '
            f'{100 * s["device_idle_share"]:.0f}%; '
            f'{s["kernels_per_step"]:.0f} kernels/it; launch calls '
            f'{s["launch_ms_per_step"]:.2f} ms/it '
            f'({s["launch_calls_per_step"]:.0f}); waiting for the GPU '
            f'{s["sync_wait_ms_per_step"]:.2f} ms/it')
    else:
        lines.append(f'   in ATen operators {100 * s["op_share"]:.0f}% '
                     f'({s["op_ms_per_step"]:.2f} ms/it), framework (Python, '
                     f'mmengine, dispatch) {100 * s["framework_share"]:.0f}%')
    lines.append(f'   SDPA: {", ".join(s["sdpa"]) or "none seen"}' +
                 (f' ({"; ".join(s["sdpa_device_kernels"])})' if s.
                  get('sdpa_device_kernels') else ''))
    return '\n'.join(lines + [s.get('table', '')])
