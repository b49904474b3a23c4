"""Hide library messages that say nothing about the user's run, each matched by text and source."""

from __future__ import annotations

import logging
import re
import warnings

# Lightning 2.6.6 (the newest release) still builds a torch LeafSpec when it flattens a trainer's dataloaders,
# which torch 2.14 deprecates with a FutureWarning on every fit (Lightning-AI/pytorch-lightning#21326)
LEAF_SPEC_MESSAGE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
LEAF_SPEC_MODULE = r"(lightning\.pytorch|pytorch_lightning)\.utilities\._pytree\Z"
# With a BasePredictionWriter among the callbacks, Lightning asks the loader's sampler which samples
# each batch holds, and warns when the batch sampler is not its own (the cached loader's whole-batch
# sampler): imgcls's PredictionWriter reads the samples from the batch's own "index" instead
BATCH_INDICES_MESSAGE = r"Couldn't infer the batch indices fetched from your dataloader"
BATCH_INDICES_MODULE = r"(lightning\.pytorch|pytorch_lightning)\.loops\.prediction_loop\Z"
# Lightning's trainer advertises its cloud logger and model registry at INFO on every run; no
# argument or environment variable turns the tips off
ADVERTISEMENT = re.compile(r"💡 Tip: For seamless cloud .*try installing \[(litlogger|litmodels)\]")
# the logger that rank_zero_info writes to is the rank_zero module of whichever package imported last
RANK_ZERO_LOGGERS = tuple(
    f"{package}.utilities.rank_zero"
    for package in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
)


def is_not_advertisement(record: logging.LogRecord) -> bool:
    """A logging filter: False for Lightning's tips to install its cloud products."""
    return not ADVERTISEMENT.match(record.getMessage())


def silence_library_noise() -> None:
    """Hide Lightning's pytree FutureWarning, its batch-indices warning of predict and its litlogger
    and litmodels tips; nothing else."""
    warnings.filterwarnings(
        "ignore", message=LEAF_SPEC_MESSAGE, category=FutureWarning, module=LEAF_SPEC_MODULE
    )
    warnings.filterwarnings("ignore", message=BATCH_INDICES_MESSAGE, module=BATCH_INDICES_MODULE)
    for name in RANK_ZERO_LOGGERS:
        logging.getLogger(name).addFilter(is_not_advertisement)
