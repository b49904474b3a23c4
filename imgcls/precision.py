"""Which precision a run trains in: bf16 on a CPU only where it trains faster there than float32."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def training_precision(precision: Any, accelerator: Any) -> Any:
    """The precision a Trainer should use for a config's ``precision`` and ``accelerator``: the one
    given, except bf16 on a CPU where it runs slower than float32, which trains in ``32-true`` (with a warning)."""
    if not str(precision).startswith("bf16") or not bf16_runs_slower(accelerator):
        return precision
    log.warning(
        "trainer.precision %s on a CPU where bf16 would be slower than float32 (emulated without "
        "AVX512-BF16 or AMX: 2.2x to 6.5x slower measured; with AVX512-BF16 alone, bf16 matrix multiplies "
        "timed slower here). Training in 32-true instead; the run's config.yaml records it. On such a CPU "
        "set --trainer.precision 32-true.",
        precision,
    )
    return "32-true"


def bf16_runs_slower(accelerator: Any) -> bool:
    """Whether a Trainer given this ``accelerator`` setting would train on a CPU where bf16 is slower
    than float32.

    There a bf16 ResNet-18 step is slower than float32: by a factor of tens on AVX2 (13 s against 2 s
    for a batch of 128 at 64 px on a 2-core EPYC), about 2x on AVX-512 without AVX512-BF16, 0.84x on a
    Xeon that lists AVX512-BF16 but not AMX, so a recipe's bf16 would turn a fast run into a slow one.
    """
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not (torch.cuda.is_available() or torch.backends.mps.is_available())
    )
    return on_cpu and not cpu_bf16_pays()


def cpu_bf16_pays(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU trains faster in bf16 than in float32.

    The CPU's own flags decide where Linux lists them: no AVX512-BF16 and no AMX, bf16 is emulated
    (oneDNN's ``_is_mkldnn_bf16_supported`` says yes on any AVX-512 CPU, yet on a 2-core AVX-512 Xeon
    without AVX512-BF16 a ResNet-18 step at 64 px ran at 63 images/s in bf16 + channels_last against
    140 in float32); AMX, it pays. AVX512-BF16 alone is not enough to know: on a 2-core AMD EPYC
    bf16 ran that step at 348 images/s against 202, on a 2-core Xeon (family 6 model 207, AMX not
    listed) at 190 against 227, where bf16 matrix multiplies ran at 175 GFLOP/s against 304. There the
    two multiplies are timed side by side (``bf16_matmul_speedup``, a fraction of a second, once per
    process). oneDNN's answer is used only where no flags can be read.
    """
    flags = cpu_flags(cpuinfo)
    if flags is not None:
        if "amx_bf16" in flags:
            return True
        return "avx512_bf16" in flags and bf16_matmul_speedup() > 1.0
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


@functools.cache
def bf16_matmul_speedup(size: int = 1024, seconds: float = 0.1) -> float:
    """This CPU's bf16 matrix-multiply rate over its float32 rate, each timed for ``seconds``, twice
    in turn so that a burst of load elsewhere falls on both."""
    rates = {"bfloat16": 0.0, "float32": 0.0}
    for _ in range(2):
        for dtype in rates:
            rates[dtype] += matmul_rate(dtype, size, seconds)
    speedup = rates["bfloat16"] / rates["float32"]
    log.debug("bf16 / float32 matrix-multiply rate on this CPU: %.2f", speedup)
    return speedup


def matmul_rate(dtype: str, size: int = 2048, seconds: float = 2.0) -> float:
    """This CPU's matrix-multiply rate in GFLOP/s for ``dtype`` ("float32" or "bfloat16"), all threads.

    A slower or faster CPU's training times read as a ratio of this figure: a recipe bound by its
    convolutions runs at a roughly constant share of it.
    """
    a = torch.randn(size, size).to(getattr(torch, dtype))
    b = torch.randn(size, size).to(getattr(torch, dtype))
    torch.mm(a, b)  # warm-up: the first call picks the kernel
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * size**3 * count / elapsed / 1e9


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The x86 feature flags Linux lists in ``cpuinfo``; None elsewhere (other systems, ARM)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    return set(line.split(":", 1)[1].split()) if line is not None else None
