"""``run_info.json``: what comparing runs needs, recorded during ``fit`` so that nobody rebuilds models."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls import runs
from imgcls.callbacks.reports import json_number
from imgcls.models.summary import count_gflops

log = logging.getLogger(__name__)


def dataset_info(datamodule: Any) -> dict[str, Any]:
    """Datamodule class, dataset name (its folder), absolute data folder and split sizes: what makes
    test numbers comparable."""
    if datamodule is None:
        return {}
    name = type(datamodule).__name__
    root = getattr(datamodule, "root", None)
    info: dict[str, Any] = {
        "datamodule": name,
        "dataset": runs.dataset_name(root) if root else name.removesuffix("DataModule"),
        "data_root": str(Path(str(root)).resolve()) if root else None,
    }
    if hasattr(datamodule, "split_targets"):
        try:
            info["split_sizes"] = {s: len(datamodule.split_targets(s)) for s in ("train", "val", "test")}
        except Exception as err:  # only a record: a datamodule without these splits still trains
            log.debug("no split sizes: %s", err)
    return info


class RunInfoWriter(Callback):
    """Record what comparing runs needs in ``run_info.json`` during ``fit``.

    Dataset (datamodule, folder, classes, split sizes), backbone, parameters, GFLOPs per image at the
    size of the first training batch, epoch times, and ``final``: the epoch-level metrics of the last
    finished epoch, all of that one epoch (``final_epoch``). Updated after every epoch, so an
    interrupted run still says what it did; ``fit_finished`` is true once the fit has ended normally
    (a sweep tests such runs, and resumes the others). Under Slurm, ``slurm_jobs`` lists the jobs
    that trained the run: a requeued job finds its run folder again by its id.
    """

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self._file: Path | None = None
        self._epoch_started = 0.0

    def _save(self, trainer: Trainer) -> None:
        path = self._file
        if path is None or not trainer.is_global_zero:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.info, indent=2, default=str) + "\n")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # trainer.log_dir broadcasts from rank zero: every process must ask for it
        folder = trainer.log_dir or trainer.default_root_dir
        self._file = path = runs.run_dir_of_log_dir(folder) / runs.RUN_INFO if folder else None
        if not trainer.is_global_zero:
            return
        # a resumed fit extends the record of the run it continues
        try:
            self.info = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        except json.JSONDecodeError:
            log.warning("%s was damaged; recording the run anew", path)
            self.info = {}
        parameters = list(pl_module.parameters())
        self.info.update(
            {
                "backbone": pl_module.hparams.get("backbone"),
                "num_classes": pl_module.hparams.get("num_classes"),
                "in_chans": pl_module.hparams.get("in_chans"),
                "class_names": [str(c) for c in getattr(pl_module, "class_names", [])],
                "total_params": sum(p.numel() for p in parameters),
                "trainable_params": sum(p.numel() for p in parameters if p.requires_grad),
                "max_epochs": trainer.max_epochs,
                "world_size": trainer.world_size,
                "device": describe_device(pl_module.device),
                **dataset_info(trainer.datamodule),
            }
        )
        self.info.setdefault("epoch_seconds", {})
        self.info["fit_finished"] = False
        job = runs.slurm_job()
        if job is not None and job not in self.info.setdefault("slurm_jobs", []):
            self.info["slurm_jobs"].append(job)
        self._save(trainer)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if "gflops" not in self.info:
            self._count_gflops(trainer, pl_module, batch)

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        # validation sees full-size images; progressive resizing trains the first epochs on smaller ones
        if trainer.is_global_zero and self.info.get("input_size") != list(_images(batch).shape[1:]):
            self._count_gflops(trainer, pl_module, batch)

    def _count_gflops(self, trainer: Trainer, pl_module: LightningModule, batch: Any) -> None:
        if not trainer.is_global_zero:
            return
        images = _images(batch)
        self.info["input_size"] = list(images.shape[1:])
        was_training = pl_module.training
        pl_module.eval()  # running statistics must not see the measuring pass
        try:
            model = pl_module._compute_logits if hasattr(pl_module, "_compute_logits") else pl_module
            self.info["gflops"] = count_gflops(model, images[:1].detach())
        except Exception as err:  # a counter failure must not stop training
            log.warning("could not count GFLOPs: %s", err)
            self.info["gflops"] = None
        finally:
            pl_module.train(was_training)
        self._save(trainer)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_started = time.perf_counter()  # a mid-epoch resume skips the epoch's start

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        # wall time of the whole epoch, validation included (Lightning validates before this hook)
        self.info["epoch_seconds"][str(trainer.current_epoch)] = round(
            time.perf_counter() - self._epoch_started, 3
        )
        seconds = list(self.info["epoch_seconds"].values())
        self.info["epochs"] = len(seconds)
        self.info["seconds_per_epoch"] = round(sum(seconds) / len(seconds), 3)
        self._record_final(trainer, trainer.current_epoch)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # callbacks listed after this one log their epoch figures after its on_train_epoch_end:
        # at the end of fit every figure of the last epoch is in, whatever the order
        if not trainer.is_global_zero:
            return
        if "final_epoch" in self.info:
            self._record_final(trainer, self.info["final_epoch"])
        # Lightning calls on_fit_end only when fit returns normally, not when it is interrupted
        self.info["fit_finished"] = not trainer.interrupted
        self._save(trainer)

    def _record_final(self, trainer: Trainer, epoch: int) -> None:
        self.info["final_epoch"] = epoch
        self.info["final"] = {
            k: json_number(v)
            for k, v in trainer.callback_metrics.items()
            # per-class scores (``val_f1/<class>``) stay in TensorBoard and metrics.csv
            if isinstance(v, torch.Tensor) and v.numel() == 1 and "/" not in k
        }
        self._save(trainer)


def describe_device(device: torch.device) -> str:
    """What a run's timings were measured on: the GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or device.type
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


def _images(batch: Any) -> torch.Tensor:
    return batch["image"] if isinstance(batch, dict) else batch[0]
