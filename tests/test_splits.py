import numpy as np
import pytest

from imgcls.data.splits import cap_per_class, stratified_split


@pytest.fixture
def targets() -> np.ndarray:
    return np.repeat(np.arange(5), [100, 80, 60, 40, 20])


def test_split_is_deterministic_and_disjoint(targets: np.ndarray) -> None:
    everything = np.arange(len(targets))
    rest, held = stratified_split(everything, targets, 0.3, seed=7)
    rest2, held2 = stratified_split(everything, targets, 0.3, seed=7)
    np.testing.assert_array_equal(held, held2)
    np.testing.assert_array_equal(rest, rest2)
    assert not set(rest) & set(held)
    assert len(rest) + len(held) == len(targets)


def test_split_pinned_indices_do_not_change_across_machines(targets: np.ndarray) -> None:
    # numpy's PCG64 stream is platform independent: these indices must never change silently
    _, held = stratified_split(np.arange(len(targets)), targets, 0.1, seed=0)
    assert held[:5].tolist() == [5, 16, 20, 36, 52]


def test_split_is_stratified(targets: np.ndarray) -> None:
    _, held = stratified_split(np.arange(len(targets)), targets, 0.3, seed=1)
    counts = np.bincount(targets[held], minlength=5)
    np.testing.assert_array_equal(counts, [30, 24, 18, 12, 6])


def test_other_seed_other_split(targets: np.ndarray) -> None:
    a = stratified_split(np.arange(len(targets)), targets, 0.3, seed=1)[1]
    b = stratified_split(np.arange(len(targets)), targets, 0.3, seed=2)[1]
    assert set(a) != set(b)


def test_small_classes_keep_a_training_sample() -> None:
    targets = np.array([0, 0, 1, 1, 1])
    rest, held = stratified_split(np.arange(5), targets, 0.5, seed=0)
    assert set(targets[rest]) == {0, 1} and set(targets[held]) == {0, 1}


def test_cap_per_class_balances(targets: np.ndarray) -> None:
    kept = cap_per_class(np.arange(len(targets)), targets, 30, seed=0)
    np.testing.assert_array_equal(np.bincount(targets[kept]), [30, 30, 30, 30, 20])
    np.testing.assert_array_equal(kept, cap_per_class(np.arange(len(targets)), targets, 30, seed=0))


def test_bad_fraction_is_rejected(targets: np.ndarray) -> None:
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(np.arange(len(targets)), targets, 1.0, seed=0)
