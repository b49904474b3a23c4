"""Opening an optuna study as both its sweep and each trial's fit do: storage, pruner, sampler.

``imgcls.studies.search`` (the sweep that asks for trials) and ``imgcls.callbacks.OptunaPruning`` (the
fit that reports to one) open the same study from its storage, in different processes or on different
nodes, and must prune by the same rule: both build it here. optuna is an optional extra
(``pip install 'imgcls[search]'``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from imgcls.errors import ConfigError


def import_optuna() -> Any:
    """The optuna module, or a ConfigError that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "a sweep with `search:` needs optuna: pip install 'imgcls[search]' (or pip install optuna); "
            "grid sweeps (`axes:`) need nothing more"
        ) from None
    return optuna


def open_storage(spec: str) -> Any:
    """An optuna storage from a sweep's ``storage:``: a database URL as it is, a ``.db``/``.sqlite``
    file as SQLite, any other file as a journal (safe on shared filesystems)."""
    optuna = import_optuna()
    if "://" in spec:
        return spec
    path = Path(spec).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path}"
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def make_instance(spec: Any, what: str) -> Any:
    """A sampler or pruner from ``{class_path, init_args}``; None (optuna's default) when not given."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ConfigError(f"search.{what} must be {{class_path: ..., init_args: {{...}}}}, got {spec!r}")
    module, _, name = str(spec["class_path"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        return cls(**(spec.get("init_args") or {}))
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise ConfigError(f"search.{what}: cannot make {spec['class_path']}: {err}") from None


def make_pruner(spec: Any) -> Any:
    """The pruner of ``search.pruner`` (optuna's default, MedianPruner, when None): made alike by the
    sweep and by each trial's ``OptunaPruning``, so that both prune by the same rule."""
    return make_instance(spec, "pruner")


def live_trial(study: Any, frozen: Any) -> Any:
    """A live trial of the study from its stored record, to report to and tell."""
    return import_optuna().trial.Trial(study, frozen._trial_id)


def open_trial(storage: str, study_name: str, trial_number: int, pruner: Any = None) -> Any:
    """Trial ``trial_number`` of a stored study, live, with the study's pruner (``make_pruner``)."""
    optuna = import_optuna()
    study = optuna.load_study(
        study_name=study_name, storage=open_storage(storage), pruner=make_pruner(pruner)
    )
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial_number)
    return live_trial(study, frozen)
