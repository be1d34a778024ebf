import numpy as np
import pytest

from components.common.profile import ReferenceProfile, bin_counts, build_profile, psi


def test_profile_round_trips_and_keeps_feature_order(breast_cancer):
    profile = build_profile(breast_cancer, "target")
    restored = ReferenceProfile.from_dict(profile.to_dict())
    assert restored == profile
    assert restored.feature_names == [c for c in breast_cancer.columns if c != "target"]
    assert sum(profile.features["mean_radius"].bin_shares) == pytest.approx(1.0)


def test_small_healthy_windows_do_not_read_as_drift(breast_cancer):
    """50 rows (serving's smallest drift window) from the reference itself stay under the fast spec's 0.6.

    With a bare 1e-4 floor, one empty bin alone scores about 0.7, so most such windows read as drift.
    """
    profile = build_profile(breast_cancer, "target")
    rng = np.random.default_rng(0)
    worst = []
    for _ in range(50):
        sample = breast_cancer.sample(50, random_state=int(rng.integers(1 << 30)))
        scores = [
            psi(stats.bin_shares, bin_counts(sample[name].to_numpy(dtype=float), stats.bin_edges))
            for name, stats in profile.features.items()
        ]
        worst.append(max(scores))
    assert np.percentile(worst, 95) < 0.6


def test_shifted_data_reads_as_drift(breast_cancer):
    stats = build_profile(breast_cancer, "target").features["mean_radius"]
    shifted = breast_cancer["mean_radius"].to_numpy() * 1.5
    assert psi(stats.bin_shares, bin_counts(shifted, stats.bin_edges)) > 1.0
    same = breast_cancer["mean_radius"].to_numpy()
    assert psi(stats.bin_shares, bin_counts(same, stats.bin_edges)) < 0.01


def test_psi_works_on_many_features_at_once_and_ignores_padding():
    expected = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    counts = np.array([[10, 10, 0], [500, 500, 1000]])
    np.testing.assert_allclose(psi(expected, counts), [0.0, 0.0], atol=1e-3)
    assert psi([0.5, 0.5], [20, 0]) > psi([0.5, 0.5], [15, 5]) > 0
