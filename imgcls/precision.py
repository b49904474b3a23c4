"""Which precision a run trains in: bf16 only where the CPU computes it natively."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def training_precision(precision: Any, accelerator: Any) -> Any:
    """The precision a Trainer should use for a config's ``precision`` and ``accelerator``: the one
    given, except bf16 on a CPU that would emulate it, which trains in ``32-true`` (with a warning)."""
    if not str(precision).startswith("bf16") or not bf16_is_emulated(accelerator):
        return precision
    log.warning(
        "trainer.precision %s on a CPU without AVX512-BF16 or AMX: bf16 would be emulated, several times "
        "slower than float32 (2.2x to 6.5x measured). Training in 32-true instead; the run's config.yaml "
        "records it. On such a CPU set --trainer.precision 32-true.",
        precision,
    )
    return "32-true"


def bf16_is_emulated(accelerator: Any) -> bool:
    """Whether a Trainer given this ``accelerator`` setting would train on a CPU that emulates bf16.

    There a bf16 ResNet-18 step is slower than float32: by a factor of tens on AVX2 (13 s against 2 s
    for a batch of 128 at 64 px on a 2-core EPYC), about 2x on AVX-512 without AVX512-BF16, so a
    recipe's bf16 would turn a fast run into a slow one.
    """
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not (torch.cuda.is_available() or torch.backends.mps.is_available())
    )
    return on_cpu and not cpu_has_native_bf16()


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU runs bf16 arithmetic natively (AVX512-BF16 or AMX), rather than emulating it.

    The CPU's own flags decide where Linux lists them. oneDNN's ``_is_mkldnn_bf16_supported`` says
    yes on any AVX-512 CPU, where bf16 is emulated: on a 2-core AVX-512 Xeon without AVX512-BF16 a
    ResNet-18 step at 64 px ran at 63 images/s in bf16 + channels_last against 140 in float32. Its
    answer is used only where no flags can be read.
    """
    flags = cpu_flags(cpuinfo)
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The x86 feature flags Linux lists in ``cpuinfo``; None elsewhere (other systems, ARM)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    return set(line.split(":", 1)[1].split()) if line is not None else None
