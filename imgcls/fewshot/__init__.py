"""Few-shot transfer: seeded N-way K-shot episodes from any datamodule's split, scored on a backbone.

``imgcls fewshot --config configs/fewshot/eurosat_5way5shot.yaml --ckpt_path CHECKPOINT`` runs a study
(``command``); ``EpisodeSampler`` draws the episodes, ``classify_prototypes`` and ``classify_linear``
score frozen features of a batch of episodes at once, ``finetune_episode`` fine-tunes per episode.
"""

from imgcls.fewshot.episodes import Episodes, EpisodeSampler
from imgcls.fewshot.methods import (
    METHODS,
    classify_linear,
    classify_prototypes,
    episode_accuracy,
    finetune_episode,
    summarize_accuracies,
)
from imgcls.fewshot.study import FewShotBackbone, FewShotResult, FewShotStudy, load_backbone

__all__ = [
    "METHODS",
    "EpisodeSampler",
    "Episodes",
    "FewShotBackbone",
    "FewShotResult",
    "FewShotStudy",
    "classify_linear",
    "classify_prototypes",
    "episode_accuracy",
    "finetune_episode",
    "load_backbone",
    "summarize_accuracies",
]
