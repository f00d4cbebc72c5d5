"""``benchmark.py --profile`` and ``--report-sdpa``: where a step's time goes.

After the timed repeats, the step mode (:mod:`.step`, per model and mode)
and the end-to-end mode (:mod:`.end_to_end`, per config, data loading
included) run ``--profile-steps`` more iterations under
``torch.profiler`` and summarise them:

* **CUDA**: the share of the iteration's wall time in which the GPU runs a
  kernel, copy or memset (the union of their intervals: *busy*; the rest
  is *idle*), the kernels by device time, how many kernels an iteration
  launches and the CPU time spent in the launch calls
  (``cudaLaunchKernel`` and kin), and the CPU time blocked waiting for the
  GPU (synchronize calls). A launch-bound step shows a low busy share with
  launch time close to the wall time.
* **CPU**: the share of the wall time inside ATen operators (self time,
  on the main and autograd threads) and the rest (Python, mmengine,
  dispatch: *framework*), the operators by self time.
* Both: ATen operators per iteration, the time waiting for the next batch
  (end to end: ``next(loader)``), and which ``scaled_dot_product_attention``
  implementation ran (:data:`SDPA_OPS`).

``--report-sdpa`` runs only the last item: one step per model and mode
under a CPU-only profiler (cheap), to say which attention kernel each
model uses (flash, memory-efficient, cuDNN or the unfused math path).

Each iteration runs inside a ``record_function`` range (and, end to end,
the data wait inside another), and ends with a device synchronisation, as
the timed iterations do. The profiler adds overhead of its own: shares and
counts are what it is for; take speeds from the timed repeats.
"""
import os.path as osp
from collections import defaultdict
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, record_function

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
#: Autograd's backward ranges (CUDA runs backward on a thread of its own).
AUTOGRAD_PREFIX = 'autograd::engine::evaluate_function'


def add_arguments(parser):
    group = parser.add_argument_group('--profile, --report-sdpa')
    group.add_argument(
        '--profile',
        action='store_true',
        help='after timing, profile --profile-steps iterations of every '
        'model with torch.profiler and print a summary (GPU busy/idle '
        'share, top kernels or operators, launch time, data wait, SDPA '
        'kernel); see ci2p_mm/analysis/profile.py')
    group.add_argument(
        '--profile-steps', type=int, default=3, help='iterations per profile')
    group.add_argument(
        '--profile-top',
        type=int,
        default=8,
        help='kernels (CUDA) or operators (CPU) listed')
    group.add_argument(
        '--profile-trace-dir',
        help='also write each profile as a Chrome trace here')
    group.add_argument(
        '--report-sdpa',
        action='store_true',
        help='say which scaled_dot_product_attention kernel each model '
        'runs (flash, memory-efficient, cuDNN, math), from one profiled '
        'step per model and mode')


def data_wait_range():
    """The range an end-to-end iteration waits for its batch in."""
    return record_function(DATA_RANGE)


class Event(NamedTuple):
    """What a summary needs of a profiler event (times in microseconds).
    ``annotation``: a ``record_function`` range (kineto also draws each on
    the GPU's timeline, spanning its kernels: not a kernel)."""
    name: str
    on_device: bool
    start: float
    end: float
    thread: int
    self_us: float
    annotation: bool = False


def _is_annotation(name: str, flag) -> bool:
    return bool(flag) or name in (STEP_RANGE, DATA_RANGE)


def _function_events(prof) -> List[Event]:
    events = []
    for e in prof.events():
        on_device = e.device_type != DeviceType.CPU
        events.append(
            Event(
                e.name, on_device, e.time_range.start, e.time_range.end,
                e.thread, 0.0 if on_device else e.self_cpu_time_total,
                _is_annotation(e.name, getattr(e, 'is_user_annotation',
                                               False))))
    if not any(e.on_device and not e.annotation for e in events):
        # Older/newer layouts keep kernels only in kineto's raw results.
        try:
            raw = prof.profiler.kineto_results.events()
        except AttributeError:
            raw = []
        for k in raw:
            if k.device_type() != DeviceType.CPU:
                start = k.start_ns() / 1e3
                flag = getattr(k, 'is_user_annotation', lambda: False)()
                events.append(
                    Event(k.name(), True, start, start + k.duration_ns() / 1e3,
                          -1, 0.0, _is_annotation(k.name(), flag)))
    return events


def iteration_profile(run_iteration: Callable[[], None],
                      steps: int,
                      device: str,
                      trace: Optional[str] = None):
    """Run ``steps`` iterations under ``torch.profiler``; the profiler."""
    activities = [ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    synchronize(device)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            with record_function(STEP_RANGE):
                run_iteration()
                synchronize(device)
    if trace:
        prof.export_chrome_trace(trace)
    return prof


def union_us(intervals: Iterable) -> float:
    """Total length of the union of ``(start, end)`` intervals."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def sdpa_kernels(names: Iterable[str]) -> List[str]:
    """The SDPA implementations among operator names, in order seen."""
    found = []
    for name in names:
        kind = SDPA_OPS.get(name)
        if kind and kind not in found:
            found.append(kind)
    return found


def summarize(events: List[Event],
              steps: int,
              device: str,
              top: int = 8) -> Dict:
    """The summary of :data:`STEP_RANGE` iterations (see the module
    docstring)."""
    iterations = [
        e for e in events if e.name == STEP_RANGE and not e.on_device
    ]
    if not iterations:
        raise ValueError(f'no {STEP_RANGE} ranges in the profile')
    start = min(e.start for e in iterations)
    end = max(e.end for e in iterations)
    wall = end - start
    main = iterations[0].thread
    host = [e for e in events if not e.on_device]
    threads = {main} | {
        e.thread
        for e in host if e.name.startswith(AUTOGRAD_PREFIX)
    }
    ops = [
        e for e in host if e.thread in threads and e.name.startswith('aten::')
    ]
    data_us = sum(e.end - e.start for e in host if e.name == DATA_RANGE)
    host = [e for e in host if not _is_annotation(e.name, e.annotation)]
    per = 1e-3 / steps  # microseconds in total -> milliseconds per step
    summary = dict(
        steps=steps,
        device=device,
        wall_ms_per_step=wall * per,
        data_wait_ms_per_step=data_us * per,
        aten_ops_per_step=len(ops) / steps,
        sdpa=sdpa_kernels(e.name for e in host))
    ranked = defaultdict(lambda: [0.0, 0])
    if device == 'cuda':
        kernels = [
            e for e in events
            if e.on_device and not _is_annotation(e.name, e.annotation)
            and e.end > start and e.start < end
        ]
        busy = union_us(
            (max(e.start, start), min(e.end, end)) for e in kernels)
        launches = [e for e in host if e.name in LAUNCH_CALLS]
        syncs = [e for e in host if e.name in SYNC_CALLS]
        summary.update(
            kernels_per_step=len(kernels) / steps,
            device_busy_ms_per_step=busy * per,
            device_busy_share=busy / wall if wall else 0.0,
            device_idle_share=1 - busy / wall if wall else 0.0,
            launch_calls_per_step=len(launches) / steps,
            launch_ms_per_step=sum(e.end - e.start for e in launches) * per,
            sync_wait_ms_per_step=sum(e.end - e.start for e in syncs) * per,
            sdpa_device_kernels=sorted({
                e.name[:80]
                for e in kernels
                if any(k in e.name.lower()
                       for k in ('flash', 'fmha', 'sdpa', 'attention'))
            }))
        for e in kernels:
            ranked[e.name][0] += e.end - e.start
            ranked[e.name][1] += 1
        basis = busy
    else:
        op_us = sum(e.self_us for e in ops)
        summary.update(
            op_ms_per_step=op_us * per,
            op_share=op_us / wall if wall else 0.0,
            framework_share=1 - op_us / wall if wall else 0.0)
        for e in ops:
            ranked[e.name][0] += e.self_us
            ranked[e.name][1] += 1
        basis = op_us
    summary['top'] = [
        dict(
            name=name,
            ms_per_step=us * per,
            calls_per_step=count / steps,
            share=us / basis if basis else 0.0)
        for name, (
            us,
            count) in sorted(ranked.items(), key=lambda kv: -kv[1][0])[:top]
    ]
    return summary


def profile_iterations(run_iteration: Callable[[], None],
                       args,
                       name: str,
                       tag: str = '') -> Dict:
    """Profile ``args.profile_steps`` iterations and summarise them."""
    trace = None
    if args.profile_trace_dir:
        safe = ''.join(c if c.isalnum() or c in '-_.' else '_'
                       for c in f'{name}{tag}')
        trace = osp.join(args.profile_trace_dir, f'{safe}.trace.json')
    prof = iteration_profile(run_iteration, args.profile_steps, args.device,
                             trace)
    return summarize(
        _function_events(prof), args.profile_steps, args.device,
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
    """A few lines of text for one summary."""
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
        what = 'kernels by GPU time'
    else:
        lines.append(f'   in ATen operators {100 * s["op_share"]:.0f}% '
                     f'({s["op_ms_per_step"]:.2f} ms/it), framework (Python, '
                     f'mmengine, dispatch) {100 * s["framework_share"]:.0f}%')
        what = 'operators by self CPU time'
    lines.append(f'   SDPA: {", ".join(s["sdpa"]) or "none seen"}' +
                 (f' ({"; ".join(s["sdpa_device_kernels"])})' if s.
                  get('sdpa_device_kernels') else ''))
    lines.append(f'   top {what}:')
    for row in s['top']:
        lines.append(f'     {100 * row["share"]:5.1f}%  '
                     f'{row["ms_per_step"]:8.3f} ms/it  '
                     f'{row["calls_per_step"]:6.0f}x  {row["name"][:90]}')
    return '\n'.join(lines)
