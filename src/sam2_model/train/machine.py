"""Where a training run ran, for the weights' metadata, and the CUDA settings a training step uses.

Nothing here touches CUDA unless the run's device is a CUDA device, so data worker processes that
import this module never initialise it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Dict, Optional

import torch


def cpu_model() -> str:
    """The CPU's model name ("model name" in /proc/cpuinfo on Linux, else the platform's word for it)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def describe_machine(device: torch.device) -> Dict[str, Any]:
    """The machine a run (or one invocation of it) trains on: CPU model and cores, GPU name on CUDA,
    torch, CUDA and Python versions. JSON-serialisable."""
    gpu: Optional[str] = None
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
    return {
        "device": str(device),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "torch": str(torch.__version__),  # (a str subclass of torch's: pickled in last.pt it would need torch)
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def enable_tf32() -> None:
    """Let float32 matmuls and cuDNN convolutions use TF32 tensor cores (matters on CUDA only: several
    times the float32 throughput on H100/H200 for a 10-bit mantissa, which training tolerates).

    Sets the legacy ``allow_tf32`` flags, as the rest of the project does: torch keeps its newer
    ``fp32_precision`` switches in step with them, whereas setting the new switches and then reading a
    legacy flag (as other code may) is an error in recent torch.
    """
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def tf32_enabled() -> bool:
    """Whether float32 matmuls may use TF32 (:func:`enable_tf32`'s setting)."""
    return bool(torch.backends.cuda.matmul.allow_tf32)
