"""Few-shot transfer (issue 12): seeded episodes, batched frozen-feature methods, the `fewshot` command,
its run folder, its one-line errors, and `compare` on few-shot runs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from imgcls import runs
from imgcls.analysis.compare import compare_fewshot_runs, write_comparison
from imgcls.analysis.runs import read_scalars
from imgcls.commands import main
from imgcls.commands.fewshot import fewshot_parser
from imgcls.data.eurosat import EUROSAT_CLASSES
from imgcls.errors import ConfigError, DataError
from imgcls.fewshot import (
    EpisodeSampler,
    classify_linear,
    classify_prototypes,
    episode_accuracy,
    finetune_episode,
    load_backbone,
    summarize_accuracies,
)
from imgcls.fewshot.methods import query_labels
from imgcls.stats import t_critical
from tests.conftest import REPO
from tests.test_cli import CONFIG, TINY

FEWSHOT_CONFIGS = sorted((REPO / "configs" / "fewshot").glob("*.yaml"))
EUROSAT_FEWSHOT = REPO / "configs" / "fewshot" / "eurosat_5way5shot.yaml"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny steps run far faster on one thread: two threads spin against each other on a busy 2-core machine
    (300 linear steps of 400 episodes: 0.7 s on one thread, 18 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --- episodes -------------------------------------------------------------------------------------


def labels_of(counts: list[int]) -> np.ndarray:
    """Labels of a split with ``counts[c]`` images of class c, classes interleaved (not sorted)."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(7).permutation(labels)


def test_episode_i_depends_only_on_the_seed_and_i() -> None:
    sampler = EpisodeSampler(labels_of([30] * 10), n_way=5, k_shot=3, q_query=4, seed=11)
    many = sampler.sample(50)
    assert (
        many.classes.shape == (50, 5) and many.support.shape == (50, 5, 3) and many.query.shape == (50, 5, 4)
    )
    # one episode alone, a few out of order, and another sampler over the same labels: the same draws
    shuffled = sampler.sample([37, 3, 0, 49])
    for row, number in enumerate([37, 3, 0, 49]):
        alone = EpisodeSampler(labels_of([30] * 10), 5, 3, 4, seed=11).episode(number)
        for drawn in (alone, shuffled[row : row + 1]):
            assert np.array_equal(drawn.classes[0], many.classes[number])
            assert np.array_equal(drawn.support[0], many.support[number])
            assert np.array_equal(drawn.query[0], many.query[number])
    assert not np.array_equal(
        EpisodeSampler(labels_of([30] * 10), 5, 3, 4, seed=12).sample(50).support, many.support
    )


def test_episodes_hold_n_distinct_classes_and_disjoint_support_and_query() -> None:
    labels = labels_of([25] * 8)
    episodes = EpisodeSampler(labels, n_way=4, k_shot=5, q_query=6, seed=0).sample(200)
    for classes, support, query in zip(episodes.classes, episodes.support, episodes.query, strict=True):
        assert len(set(classes.tolist())) == 4
        used = np.concatenate([support.ravel(), query.ravel()])
        assert len(set(used.tolist())) == len(used) == 4 * 11  # no image twice, support and query disjoint
        for way, c in enumerate(classes):  # episode label n is the n-th class, in support and query
            assert (labels[support[way]] == c).all() and (labels[query[way]] == c).all()
    assert set(np.unique(episodes.classes)) == set(range(8))  # every class is drawn over 200 episodes


def test_only_classes_with_k_plus_q_images_are_drawn() -> None:
    names = [f"class{c}" for c in range(6)]
    labels = labels_of([20, 20, 4, 20, 7, 20])
    sampler = EpisodeSampler(labels, n_way=3, k_shot=5, q_query=3, class_names=names)
    assert sampler.eligible_classes.tolist() == [0, 1, 3, 5]
    assert not np.isin(sampler.sample(100).classes, [2, 4]).any()
    with pytest.raises(DataError) as error:
        EpisodeSampler(labels, n_way=5, k_shot=5, q_query=3, class_names=names, split="val")
    message = str(error.value)
    assert "need 8 images in each of 5 classes" in message and "only 4 classes of the val split" in message
    assert "class4 (7), class2 (4)" in message and "--split all" in message


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"n_way": 7}, "--n_way 7 is more than the 6 classes of the test split"),
        ({"n_way": 1}, "--n_way must be 2 or more"),
        ({"k_shot": 0}, "--k_shot must be 1 or more"),
        ({"q_query": 0}, "--q_query must be 1 or more"),
    ],
)
def test_bad_episode_settings_are_one_clear_error(settings: dict[str, int], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        EpisodeSampler(labels_of([20] * 6), **{"n_way": 5, "k_shot": 1, "q_query": 1, **settings})


# --- methods --------------------------------------------------------------------------------------


def synthetic_episodes(
    separable: bool, episodes: int = 200, n: int = 5, k: int = 5, q: int = 10, dim: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Support (E, N, K, D) and query (E, N * Q, D) features: each class a distinct direction plus small
    noise (``separable``), or noise alone."""
    generator = torch.Generator().manual_seed(0)
    centers = torch.randn(episodes, n, 1, dim, generator=generator) * (4.0 if separable else 0.0)
    support = centers + torch.randn(episodes, n, k, dim, generator=generator)
    query = centers + torch.randn(episodes, n, q, dim, generator=generator)
    return support, query.flatten(1, 2)


@pytest.mark.parametrize("classify", [classify_prototypes, classify_linear])
def test_frozen_methods_are_perfect_on_separable_features_and_chance_on_noise(classify) -> None:
    support, query = synthetic_episodes(separable=True)
    labels = query_labels(5, 10)
    assert episode_accuracy(classify(support, query), labels).min() == 1.0
    support, query = synthetic_episodes(separable=False, episodes=400)
    accuracy = episode_accuracy(classify(support, query), labels)
    # chance is 1/5; the mean of 400 episodes of 50 queries has a standard error of about 0.006
    assert accuracy.shape == (400,) and abs(float(accuracy.mean()) - 0.2) < 0.03


def test_linear_trains_each_episode_as_it_would_alone() -> None:
    support, query = synthetic_episodes(separable=False, episodes=6)
    together = classify_linear(support, query, steps=50)
    for e in range(6):
        alone = classify_linear(support[e : e + 1], query[e : e + 1], steps=50)
        torch.testing.assert_close(alone[0], together[e], rtol=1e-4, atol=1e-4)


def test_summary_is_mean_std_and_student_t_95_percent_interval() -> None:
    summary = summarize_accuracies([0.5, 0.7, 0.9, 0.7])
    std = float(np.std([0.5, 0.7, 0.9, 0.7], ddof=1))
    assert summary["mean"] == pytest.approx(0.7) and summary["std"] == pytest.approx(std)
    assert summary["ci95"] == pytest.approx(t_critical(3) * std / 2) and summary["episodes"] == 4
    assert summarize_accuracies([0.6]) == {"mean": 0.6, "std": None, "ci95": None, "episodes": 1}


def test_finetune_leaves_the_backbone_alone_and_repeats_with_its_seed() -> None:
    from imgcls.data.transforms import BatchTransform
    from imgcls.models import create_backbone

    backbone, width = create_backbone("test_resnet")
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    transform = BatchTransform("flip", [0.5] * 3, [0.25] * 3, 3)
    generator = torch.Generator().manual_seed(0)
    support = torch.randint(0, 256, (3, 2, 3, 16, 16), dtype=torch.uint8, generator=generator)
    query = torch.randint(0, 256, (3, 4, 3, 16, 16), dtype=torch.uint8, generator=generator)
    scores = [
        finetune_episode(backbone, width, support, query, 3, transform, epochs=2, seed=s) for s in (5, 5)
    ]
    assert scores[0] == scores[1] and round(scores[0] * 12, 6).is_integer()
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


# --- models ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.ckpt of a 1-epoch test_resnet run on the tiny EuroSAT fixture."""
    from tests.fixtures import folders

    root = tmp_path_factory.mktemp("fewshot")
    data = folders.make_eurosat(root / "eurosat")
    args = ["--config", CONFIG, f"--runs_dir={root / 'runs'}", f"--data.init_args.root={data}", *TINY]
    main(["fit", *args, "--trainer.max_epochs=1"])
    return root / "runs" / "eurosat_sample" / "version_0" / "checkpoints" / "best.ckpt"


def test_a_checkpoint_gives_its_backbone_and_mismatches_are_clear_errors(
    checkpoint: Path, tmp_path: Path
) -> None:
    model = load_backbone(checkpoint, in_chans=3)
    assert model.backbone == "test_resnet" and model.checkpoint == str(checkpoint.resolve())
    assert model.module.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, model.num_features)
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(model.module.state_dict()["conv1.0.weight"], state["backbone.conv1.0.weight"])

    with pytest.raises(ConfigError, match="holds a test_resnet model, not --backbone resnet18"):
        load_backbone(checkpoint, backbone="resnet18")
    with pytest.raises(ConfigError, match=r"expects 3-channel images but the data has 1\..*--pretrained"):
        load_backbone(checkpoint, in_chans=1)
    with pytest.raises(ConfigError, match="both give the weights"):
        load_backbone(checkpoint, pretrained=True)
    weights = tmp_path / "weights.pth"
    torch.save(
        {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}, weights
    )
    with pytest.raises(
        ConfigError, match=r"is not an imgcls checkpoint.*--pretrained .*weights\.pth with --backbone"
    ):
        load_backbone(weights)
    # the same file as --pretrained: loaded into that architecture (and adapted to 1 channel), refused by another
    assert (
        load_backbone(backbone="test_resnet", pretrained=str(weights), in_chans=1).num_features
        == model.num_features
    )
    with pytest.raises(ConfigError, match=r"Check that model\.backbone names the architecture"):
        load_backbone(backbone="test_convnext", pretrained=str(checkpoint))
    with pytest.raises(ConfigError, match="needs a model: --ckpt_path"):
        load_backbone()


# --- the command ----------------------------------------------------------------------------------


def fewshot_args(checkpoint: Path, runs_dir: Path, *extra: str) -> list[str]:
    """The EuroSAT config on the tiny fixture (8 images per class): 3-way 2-shot, 3 queries, all images."""
    data = checkpoint.parents[4] / "eurosat"
    return [
        "fewshot",
        "--config",
        str(EUROSAT_FEWSHOT),
        f"--data.init_args.root={data}",
        "--data.init_args.image_size=32",
        "--data.init_args.num_workers=0",
        "--split=all",
        f"--ckpt_path={checkpoint}",
        f"--runs_dir={runs_dir}",
        "--n_way=3",
        "--k_shot=2",
        "--q_query=3",
        "--episodes=6",
        "--finetune_episodes=2",
        "--finetune_epochs=1",
        "--linear_steps=50",
        *extra,
    ]


@pytest.fixture(scope="module")
def fewshot_run(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("fewshot_runs")
    main(fewshot_args(checkpoint, runs_dir))
    return runs_dir / "eurosat_5way5shot" / "version_0"


def test_fewshot_writes_episodes_results_config_and_tensorboard(fewshot_run: Path) -> None:
    rows = csv_rows(fewshot_run / runs.FEWSHOT_EPISODES)
    assert [(r["method"], r["episode"]) for r in rows] == [
        (method, str(i))
        for method, count in (("prototypes", 6), ("linear", 6), ("finetune", 2))
        for i in range(count)
    ]
    for row in rows:
        classes = row["classes"].split(";")
        assert len(set(classes)) == 3 and set(classes) <= set(EUROSAT_CLASSES)
        assert round(float(row["accuracy"]) * 9, 6).is_integer()  # 9 queries per episode
    # every method scores the same episodes: episode i has the same classes for all of them
    assert rows[0]["classes"] == rows[6]["classes"] == rows[12]["classes"]

    results = json.loads((fewshot_run / runs.FEWSHOT_RESULTS).read_text())
    assert {k: results[k] for k in ("n_way", "k_shot", "q_query", "episodes", "seed", "split")} == {
        "n_way": 3, "k_shot": 2, "q_query": 3, "episodes": 6, "seed": 0, "split": "all"
    }  # fmt: skip
    assert (
        results["dataset"] == "eurosat"
        and results["split_images"] == 80
        and results["backbone"] == "test_resnet"
    )
    assert results["checkpoint"].endswith("best.ckpt") and results["pretrained"] is False
    assert results["feature_dim"] > 0 and results["extraction_seconds"] >= 0
    assert 0 < results["images_embedded"] <= 80
    assert list(results["methods"]) == ["prototypes", "linear", "finetune"]
    for method, summary in results["methods"].items():
        values = [float(r["accuracy"]) for r in rows if r["method"] == method]
        assert summary["episodes"] == len(values) and summary["mean"] == pytest.approx(np.mean(values))
        half = t_critical(len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
        assert summary["ci95"] == pytest.approx(half)
        assert summary["seconds"] >= 0

    config = yaml.safe_load((fewshot_run / runs.CONFIG).read_text())
    assert config["data"]["class_path"] == "imgcls.EuroSATDataModule" and config["n_way"] == 3
    assert config["experiment"] == "eurosat_5way5shot" and config["ckpt_path"].endswith("best.ckpt")
    scalars = read_scalars(fewshot_run)
    means = scalars[scalars.tag == "fewshot/prototypes_acc"]["value"].tolist()
    assert means == pytest.approx([results["methods"]["prototypes"]["mean"]])
    assert sorted(scalars[scalars.tag == "fewshot/linear_episode_acc"]["step"]) == list(range(6))


def test_fewer_episodes_are_the_first_ones_of_more(fewshot_run: Path, checkpoint: Path, capsys) -> None:
    runs_dir = fewshot_run.parents[1]
    main(fewshot_args(checkpoint, runs_dir, "--episodes=3", "--methods=[prototypes]", "--experiment=three"))
    assert "| prototypes |" in capsys.readouterr().out  # the table printed at the end
    three = csv_rows(runs_dir / "three" / "version_0" / runs.FEWSHOT_EPISODES)
    six = [r for r in csv_rows(fewshot_run / runs.FEWSHOT_EPISODES) if r["method"] == "prototypes"]
    assert [(r["classes"], r["accuracy"]) for r in three] == [(r["classes"], r["accuracy"]) for r in six[:3]]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--n_wya=3"], "unknown option --n_wya (did you mean --n_way?)"),
        (["--methods=[protos]"], "--methods expects one of 'prototypes', 'linear', 'finetune', got 'protos'"),
        (
            ["--data.init_args.rot=x"],
            "--data.init_args.rot is not an argument of imgcls.EuroSATDataModule (did you mean --data.init_args.root?)",
        ),
        (["--split=test"], "need 5 images in each of 3 classes, but only 0 classes of the test split"),
        (["--n_way=11"], "--n_way 11 is more than the 10 classes of the all split"),
        (["--backbone=resnet18"], "holds a test_resnet model, not --backbone resnet18"),
        (["--finetune_augment=flop"], "unknown --finetune_augment 'flop'; choose one of: none, flip"),
    ],
)
def test_fewshot_errors_are_one_line(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(fewshot_args(checkpoint, tmp_path, *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("imgcls: error:")
    assert expected in err[0]
    assert not (tmp_path / "eurosat_5way5shot").exists()  # nothing written


def test_a_config_file_typo_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("data:\n  class_path: imgcls.EuroSATDataModule\n  init_args: {root: x}\nnway: 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'nway' \(did you mean n_way\?\)"):
        fewshot_parser().parse(["--config", str(config)])


@pytest.mark.parametrize("path", FEWSHOT_CONFIGS, ids=[p.stem for p in FEWSHOT_CONFIGS])
def test_every_fewshot_config_parses(path: Path) -> None:
    config = fewshot_parser().parse(["--config", str(path)])
    assert config.data.class_path.startswith("imgcls.") and config.episodes == 600
    assert (config.n_way, config.k_shot, config.q_query) == (5, 5, 15)
    assert set(config.methods) == {"prototypes", "linear", "finetune"} and config.finetune_episodes


# --- compare --------------------------------------------------------------------------------------


def test_compare_puts_fewshot_runs_side_by_side(fewshot_run: Path, tmp_path: Path) -> None:
    written = write_comparison([fewshot_run.parents[1]], tmp_path / "comparison")
    assert written["fewshot_md"] == tmp_path / "comparison" / "fewshot.md" and "comparison_md" not in written
    table = csv_rows(written["fewshot_csv"])
    ours = [r for r in table if r["run"] == "eurosat_5way5shot/version_0"]
    assert [r["method"] for r in ours] == ["prototypes", "linear", "finetune"]
    results = json.loads((fewshot_run / runs.FEWSHOT_RESULTS).read_text())
    for row in ours:
        assert (row["model"], row["n_way"], row["k_shot"]) == ("test_resnet", "3", "2")
        assert row["weights"] == "eurosat_sample/version_0/best.ckpt"
        summary = results["methods"][row["method"]]
        assert (
            float(row["mean"]) == pytest.approx(summary["mean"])
            and int(row["episodes"]) == summary["episodes"]
        )
        assert float(row["ci95"]) == pytest.approx(summary["ci95"])
    markdown = written["fewshot_md"].read_text()
    assert (
        "| run | model | weights |" in markdown
        and "| eurosat_5way5shot/version_0 | test_resnet |" in markdown
    )

    # a damaged fewshot.json is named with the fix, or left out with --skip-untested
    damaged = tmp_path / "runs" / "broken" / "version_0"
    damaged.mkdir(parents=True)
    (damaged / runs.FEWSHOT_RESULTS).write_text('{"n_way": 5, ')
    with pytest.raises(DataError, match=r"fewshot\.json is damaged.*imgcls fewshot --config"):
        compare_fewshot_runs([fewshot_run, damaged])
    assert len(compare_fewshot_runs([fewshot_run, damaged], skip_damaged=True)) == 3
