"""silence_library_noise hides Lightning's pytree FutureWarning and cloud tips, and nothing else."""

from __future__ import annotations

import logging
import warnings

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import CombinedLoader

from imgcls.quiet import LEAF_SPEC_MESSAGE, RANK_ZERO_LOGGERS, silence_library_noise

LEAF_SPEC_WARNING = (
    "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and "
    "treespec.is_leaf()` instead."
)


def emit(message: str, category: type[Warning], module: str) -> None:
    warnings.warn_explicit(
        message, category, filename=f"{module.replace('.', '/')}.py", lineno=1, module=module
    )


def test_only_lightnings_leaf_spec_warning_is_hidden() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_library_noise()
        CombinedLoader(range(2))  # how every trainer wraps its dataloaders: the real warning
        emit(LEAF_SPEC_WARNING, FutureWarning, "lightning.pytorch.utilities._pytree")
        # the same message from anyone else's code, or another warning from Lightning's module, stays
        emit(LEAF_SPEC_WARNING, FutureWarning, "imgcls.models.classifier")
        emit(LEAF_SPEC_WARNING, UserWarning, "lightning.pytorch.utilities._pytree")
        emit("another deprecation", FutureWarning, "lightning.pytorch.utilities._pytree")
    kept = [(str(w.message), w.category, w.filename) for w in caught]
    assert kept == [
        (LEAF_SPEC_WARNING, FutureWarning, "imgcls/models/classifier.py"),
        (LEAF_SPEC_WARNING, UserWarning, "lightning/pytorch/utilities/_pytree.py"),
        ("another deprecation", FutureWarning, "lightning/pytorch/utilities/_pytree.py"),
    ]


def test_leaf_spec_pattern_matches_the_warning_torch_emits() -> None:
    # the filter's text is a regex: it must still match torch's wording
    assert LEAF_SPEC_MESSAGE.replace("\\", "") in LEAF_SPEC_WARNING


def test_only_lightnings_cloud_tips_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "filters", [])  # the filters go away with the test
        monkeypatch.setattr(logger, "handlers", [handler])
        monkeypatch.setattr(logger, "propagate", False)
    silence_library_noise()
    silence_library_noise()  # twice adds nothing twice
    Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    assert messages, "the trainer logged nothing: is the logger name in RANK_ZERO_LOGGERS still Lightning's?"
    assert not any("litlogger" in m or "litmodels" in m for m in messages)
    assert any(m.startswith("GPU available") for m in messages)  # Lightning's other messages stay
    tip = (
        "💡 Tip: For seamless cloud logging, try installing [litlogger](https://pypi.org/project/litlogger/)"
    )
    logging.getLogger(RANK_ZERO_LOGGERS[0]).info(tip)
    logging.getLogger(RANK_ZERO_LOGGERS[0]).info("💡 Tip: install nothing")
    assert messages[-1] == "💡 Tip: install nothing"
    assert all(len(logging.getLogger(name).filters) == 1 for name in RANK_ZERO_LOGGERS)
