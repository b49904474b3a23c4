"""Every checkpoint records what inference needs: the model's input contract (``imgcls.contract``)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls.contract import CHECKPOINT_KEY, RESIZE_RULES, InputContract


def contract_of(datamodule: Any, model: LightningModule) -> InputContract:
    """The input contract of a model trained on an imgcls datamodule."""
    mean, std = datamodule.normalization
    return InputContract(
        class_names=[str(name) for name in datamodule.class_names],
        in_chans=int(datamodule.in_chans),
        image_size=datamodule.image_size,
        mean=list(mean),
        std=list(std),
        resize=RESIZE_RULES[0] if datamodule.image_size else "none",
        test_time_augmentation=str(getattr(model, "test_time_augmentation", "none")),
        image_files=bool(getattr(datamodule, "reads_image_files", True)),
    )


class ContractWriter(Callback):
    """Write the input contract into every checkpoint (``checkpoint["imgcls_inference"]``), so that a
    checkpoint alone is enough to classify new images (``imgcls.inference.Predictor``, ``imgcls export``)."""

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "normalization"):
            checkpoint[CHECKPOINT_KEY] = contract_of(datamodule, pl_module).to_dict()
