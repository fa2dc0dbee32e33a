"""The course's FID: the Fréchet distance against scipy's matrix square root, and its feature network."""

import numpy as np
import pytest
import torch

from genimg.learn import metrics


def _random_statistics(seed, n=12):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return torch.randn(n, generator=g, dtype=torch.float64), a @ a.T / n + 0.1 * torch.eye(n, dtype=torch.float64)


def test_the_frechet_distance_equals_the_formula_with_scipys_sqrtm():
    from scipy import linalg

    (mu1, s1), (mu2, s2) = _random_statistics(1), _random_statistics(2)
    root = linalg.sqrtm(s1.numpy() @ s2.numpy())  # the usual implementation (pytorch-fid's): a general sqrtm
    expected = float(np.sum((mu1 - mu2).numpy() ** 2) + np.trace(s1.numpy()) + np.trace(s2.numpy())
                     - 2 * np.trace(root).real)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert metrics.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    # for diagonal covariances it reduces to ‖μ₁ − μ₂‖² + Σ (√a − √b)²
    a, b = torch.tensor([1.0, 4.0], dtype=torch.float64), torch.tensor([9.0, 1.0], dtype=torch.float64)
    zero = torch.zeros(2, dtype=torch.float64)
    assert metrics.frechet_distance(zero, torch.diag(a), zero + 1, torch.diag(b)) == pytest.approx(2 + 4 + 1)


def test_fid_of_real_digits_is_near_zero_and_of_noise_far_away():
    from genimg.learn import datasets

    data = datasets.load("digits", 16)
    order = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))
    train, held = order[:1200], order[1200:]
    net = metrics.train_digit_features(data.images[train], data.labels[train])
    accuracy = (net(data.images[held]).argmax(1) == data.labels[held]).float().mean()
    assert accuracy > 0.93, accuracy
    half = len(held) // 2
    same = metrics.fid(net, data.images[held[:half]], data.images[held[half:]])
    noise = torch.rand(len(held) - half, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(data.images[held[half:]], 5, 1, 2)  # digits, badly drawn
    worse, worst = metrics.fid(net, data.images[held[:half]], blurred), metrics.fid(net, data.images[held[:half]], noise)
    assert same < worse < worst and same < 0.1 * worst, (same, worse, worst)
