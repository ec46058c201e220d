"""Tests for erase.data.phantoms: the output contract, determinism, smoothness across
slices, and that brain and knee phantoms form measurably different domains."""

import numpy as np
import pytest
from scipy import ndimage

from erase.data.phantoms import brain_volume, knee_volume

GENERATORS = [brain_volume, knee_volume]
SEEDS = range(5)


def _interior(support: np.ndarray) -> np.ndarray:
    """Support minus a thin rim, so outline edges do not dominate texture statistics."""
    return ndimage.binary_erosion(support, iterations=3)


def _elongation(mask: np.ndarray) -> float:
    """Minor / major eigenvalue of the pixel-coordinate covariance: 1 for a disc."""
    rows, cols = np.nonzero(mask)
    ev = np.linalg.eigvalsh(np.cov(np.stack([cols, rows]).astype(np.float64)))
    return float(ev[0] / ev[1])


def _coherence(img: np.ndarray, mask: np.ndarray) -> float:
    """Orientation coherence of the gradient structure tensor (0 isotropic, 1 one direction)."""
    gy, gx = np.gradient(img.astype(np.float64))
    inner = _interior(mask)
    a, b, c = np.mean(gx[inner] ** 2), np.mean(gy[inner] ** 2), np.mean((gx * gy)[inner])
    lo, hi = np.linalg.eigvalsh([[a, c], [c, b]])
    return float((hi - lo) / (hi + lo))


@pytest.mark.parametrize("make", GENERATORS)
def test_same_arguments_give_byte_identical_volumes(make):
    img_a, sup_a = make(7, 4, 64)
    img_b, sup_b = make(7, 4, 64)
    assert img_a.tobytes() == img_b.tobytes()
    assert sup_a.tobytes() == sup_b.tobytes()


@pytest.mark.parametrize("make", GENERATORS)
def test_different_seeds_give_different_volumes(make):
    img_a, _ = make(1, 4, 64)
    img_b, _ = make(2, 4, 64)
    assert np.mean(np.abs(img_a - img_b)) > 1e-3


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("num_slices,size", [(1, 32), (8, 96), (3, 81), (2, 320)])
def test_output_contract(make, num_slices, size):
    img, sup = make(3, num_slices, size)
    assert img.shape == sup.shape == (num_slices, size, size)
    assert img.dtype == np.float32 and sup.dtype == np.bool_
    assert np.all(np.isfinite(img))
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert abs(float(img.max()) - 1.0) < 1e-6
    assert np.all(img[~sup] == 0.0), "background outside the support must be exactly 0"
    for s in range(num_slices):
        frac = sup[s].mean()
        assert 0.15 < frac < 0.95, f"slice {s}: support covers {frac:.2f} of the image"
        assert img[s][sup[s]].mean() > 0.1, f"slice {s} is (nearly) empty"


@pytest.mark.parametrize("make", GENERATORS)
def test_adjacent_slices_are_more_similar_than_distant_ones(make):
    num_slices = 8
    for seed in range(3):
        img, _ = make(seed, num_slices, 64)
        dist = lambda i, j: float(np.mean((img[i] - img[j]) ** 2))  # noqa: E731
        adjacent = [dist(i, i + 1) for i in range(num_slices - 1)]
        half = num_slices // 2
        far = [dist(i, j) for i in range(num_slices) for j in range(i + half, num_slices)]
        assert min(adjacent) > 0.0, "adjacent slices must not be identical"
        assert np.mean(adjacent) < 0.5 * np.mean(far)


def test_brain_support_is_rounder_than_knee_support():
    brain = [_elongation(brain_volume(s, 3, 96)[1][1]) for s in SEEDS]
    knee = [_elongation(knee_volume(s, 3, 96)[1][1]) for s in SEEDS]
    assert min(brain) > 0.6, brain  # near-circular head
    assert max(knee) < 0.55, knee  # leg is taller than wide
    assert min(brain) > max(knee) + 0.1


def test_knee_texture_is_oriented_and_brain_texture_is_not():
    brain = [_coherence(*(a[1] for a in brain_volume(s, 3, 96))) for s in SEEDS]
    knee = [_coherence(*(a[1] for a in knee_volume(s, 3, 96))) for s in SEEDS]
    assert max(brain) < 0.3, brain
    assert min(knee) > 0.4, knee
    assert min(knee) > max(brain) + 0.2


def test_knee_has_more_fine_texture_inside_the_tissue():
    """Trabecular marrow and muscle fibres put energy at the finest scales, away from
    edges; the brain's tissue classes are nearly flat between their boundaries."""

    def fine_energy(img, sup):
        detail = img - ndimage.median_filter(img, size=3)
        return float(np.median(np.abs(detail[_interior(sup)])))

    brain = [fine_energy(*(a[1] for a in brain_volume(s, 3, 96))) for s in SEEDS]
    knee = [fine_energy(*(a[1] for a in knee_volume(s, 3, 96))) for s in SEEDS]
    assert min(knee) > 2 * max(brain), (brain, knee)
