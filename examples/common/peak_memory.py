"""Peak memory of a stretch of work: on a GPU the allocator's peak, on a Linux CPU the peak resident set
(VmHWM), which `/proc/self/clear_refs` resets to the current resident set. Both are reported as the peak
above what was in use when the stretch began."""

import re
from pathlib import Path

import torch


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def start_peak_memory(device) -> int:
    """Reset the peak; returns the memory in use now, in bytes."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
    return _status_kib("VmRSS") * 1024


def peak_memory_since(start: int, device) -> int:
    """Bytes at the peak since `start_peak_memory`, above what was in use then."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    return _status_kib("VmHWM") * 1024 - start
