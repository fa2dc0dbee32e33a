"""How good are the samples? The Fréchet distance of Heusel et al. 2017, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium" (FID), and the features it is measured in.

FID fits a Gaussian to the features of real images (mean μ_r, covariance Σ_r) and one to the features of
samples (μ_g, Σ_g) and measures the Fréchet (2-Wasserstein) distance between the two (§ "FID", eq. 6):

    d² = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

Lower is better; 0 only when both Gaussians are the same. The paper's features are the 2048 pool
activations of an Inception-v3 trained on ImageNet. This course runs offline on 8x8 digits, so its
features are the last hidden layer of a small digit classifier trained here in seconds
(:class:`DigitFeatures`): the distance then measures what that network notices (stroke shapes of
digits), not ImageNet's textures and objects — numbers are comparable between the course's models, not
with published FIDs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Settings of the feature network (it trains in a few seconds on 2 CPU cores).
FEATURE_SIZE = 8  # images are compared at the 8x8 of the original digits
FEATURE_WIDTH = 64  # units of the hidden layer whose activations are the features
FEATURE_EPOCHS = 60
FEATURE_LR = 3e-3


def statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, Σ) of a set of feature vectors (rows), in float64: the mean and the unbiased covariance."""
    x = features.double()
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (len(x) - 1)


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix, by its eigendecomposition
    A = Q diag(λ) Qᵀ  ->  A^{1/2} = Q diag(√λ) Qᵀ (eigenvalues rounded below zero are taken as zero)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """d² of eq. 6. Σ₁Σ₂ is not symmetric, but it is similar to the symmetric PSD matrix
    S = Σ₁^{1/2} Σ₂ Σ₁^{1/2}  (S = Σ₁^{−1/2} (Σ₁Σ₂) Σ₁^{1/2}), so Tr((Σ₁Σ₂)^{1/2}) = Tr(S^{1/2})."""
    root1 = sqrtm_psd(sigma1)
    cross = sqrtm_psd(root1 @ sigma2 @ root1)
    return float((mu1 - mu2).square().sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * torch.trace(cross))


class DigitFeatures(nn.Module):
    """A small classifier of 8x8 digits; ``features`` are its hidden layer (the space FID is measured in)."""

    def __init__(self, width: int = FEATURE_WIDTH, classes: int = 10):
        super().__init__()
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(FEATURE_SIZE * FEATURE_SIZE, 128), nn.ReLU(),
                                    nn.Linear(128, width), nn.ReLU())
        self.out = nn.Linear(width, classes)

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """Images in [−1, 1] of any size and channels -> grey 8x8 in [0, 1] (the digits' own resolution)."""
        x = (images.clamp(-1, 1) + 1) / 2
        if x.shape[1] > 1:
            x = x.mean(1, keepdim=True)
        return F.interpolate(x, size=(FEATURE_SIZE, FEATURE_SIZE), mode="area")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.prepare(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(images))


def train_digit_features(images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> DigitFeatures:
    """The feature network trained on labelled digits (Adam, batches of 256): seconds on a CPU."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitFeatures()
    x = net.prepare(images)
    with torch.enable_grad():  # callers may be sampling under no_grad
        _fit(net, x, labels, generator)
    return net.eval()


def _fit(net: DigitFeatures, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> None:
    optimiser = torch.optim.Adam(net.parameters(), lr=FEATURE_LR)
    for _ in range(FEATURE_EPOCHS):
        order = torch.randperm(len(x), generator=generator)
        for batch in order.split(256):
            loss = F.cross_entropy(net.out(net.hidden(x[batch])), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()


@torch.no_grad()
def fid(net: DigitFeatures, real: torch.Tensor, generated: torch.Tensor) -> float:
    """FID between two sets of images in [−1, 1], in ``net``'s feature space."""
    return frechet_distance(*statistics(net.features(real)), *statistics(net.features(generated)))
