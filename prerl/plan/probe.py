"""What a block of code allocates at its peak, to hold the plan against: torch's CUDA counters on a
GPU (``max_memory_allocated``, reset at the start), torch's profiler on a CPU (every allocation and
free it records, summed in time order; the CPU allocator keeps no counters of its own).

    with PeakMemory(device) as probe:
        policy_update(...)
    probe.peak  # bytes above what was allocated when the block started
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile


class PeakMemory:
    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.peak = 0  # bytes allocated above the start, at the highest point
        self.start = 0  # bytes allocated when the block started (CUDA only; 0 on a CPU)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self.profiler.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.start
            return
        self.profiler.__exit__(*exc)
        if exc[0] is None:
            self.peak = cpu_peak(self.profiler)


def cpu_peak(prof: profile) -> int:
    """The highest running sum of the CPU allocations and frees the profiler recorded."""
    results: Any = prof.profiler.kineto_results  # type: ignore[union-attr]  # set once the profiler stopped
    events = [
        (e.start_ns(), e.nbytes())
        for e in results.events()
        if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    ]
    current = peak = 0
    for _, nbytes in sorted(events):
        current += nbytes
        peak = max(peak, current)
    return peak
