"""Every imgcls callback: the writers of a run folder, TensorBoard reports, throughput, progress lines.

``TestReportWriter``, ``PredictionWriter``, ``RunInfoWriter``, ``RandomStates``, ``ContractWriter`` and
``TerminationCheckpoint`` make the run folder
(and its resumes) and are added by the CLI; the others are configured in YAML under ``trainer.callbacks``
(``class_path: imgcls.callbacks.ImagesPerSecond``).
"""

from imgcls.callbacks.averaging import EMA
from imgcls.callbacks.contract import ContractWriter
from imgcls.callbacks.health import TrainingHealth
from imgcls.callbacks.optuna_pruning import OptunaPruning
from imgcls.callbacks.progress import EpochLines
from imgcls.callbacks.random_states import RandomStates
from imgcls.callbacks.reports import (
    PredictionWriter,
    TestReportWriter,
    TopKPredictions,
    classification_metrics,
)
from imgcls.callbacks.resizing import ProgressiveResizing
from imgcls.callbacks.run_info import RunInfoWriter
from imgcls.callbacks.tensorboard import TensorBoardReports
from imgcls.callbacks.termination import TerminationCheckpoint
from imgcls.callbacks.throughput import ImagesPerSecond

__all__ = [
    "EMA",
    "ContractWriter",
    "EpochLines",
    "ImagesPerSecond",
    "OptunaPruning",
    "PredictionWriter",
    "ProgressiveResizing",
    "RandomStates",
    "RunInfoWriter",
    "TensorBoardReports",
    "TerminationCheckpoint",
    "TestReportWriter",
    "TopKPredictions",
    "TrainingHealth",
    "classification_metrics",
]
