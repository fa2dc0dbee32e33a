"""The teaching models, measured: class-conditional DDPM and DCGAN on scikit-learn's digits.

    python bench/learn_quality.py [--ddpm-epochs 150] [--gan-epochs 300] [--cgan-epochs 100]
                                  [--skip-ddpm] [--skip-gan] [--skip-cgan] [--skip-vae] [--skip-ldm] [--skip-flow]

A logistic-regression classifier trained on the real 8x8 digits judges samples shrunk back to 8x8:
- DDPM: the share of guided samples (10 per class x 10 classes) labelled as the class asked for;
- DCGAN, unconditional and conditional: the share of samples the classifier is confident about
  (p >= 0.9) and the entropy of the predicted-class histogram (collapse shows as low entropy; the
  maximum is ln 10 = 2.30 nats); for the conditional one (50 per class) also the share labelled as
  the class asked for.
- VAE: the chapter's own measures (genimg.learn.train_vae.quality).
- LDM: as the DDPM (guided samples for "a <digit>", judged the same way), trained after it in the same
  run so that their training and sampling times sit side by side.
- Flow DiT (`genimg learn flow`): as the LDM, on the same kind of codes, sampled by Euler (50 steps);
  its quality against fewer steps, and its reflow student's, is bench/learn_steps.py's table.
Every model's FID against the 1,797 real digits, in the course's digit features (genimg.learn.metrics),
and training and sampling times are printed with the settings, then one table of them all.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F


def digit_classifier():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    # Weak regularisation, so that real digits are judged confidently: through the same 8->size->8
    # round trip as the samples, 90.5% of the real digits get p >= 0.9 (98.7% are classified right).
    clf = LogisticRegression(max_iter=10000, C=50)
    clf.fit(digits.data / 16.0, digits.target)
    return clf


def to_digit_features(images: torch.Tensor) -> np.ndarray:
    """Samples in [-1, 1] at any size -> 8x8 in sklearn's 0..1 scale (the classifier's input)."""
    x = (images.clamp(-1, 1) + 1) / 2
    x = F.interpolate(x, size=(8, 8), mode="area")
    return x.flatten(1).numpy()


def guided_quality(run: Path, clf, features, real: torch.Tensor, guidance: float) -> tuple[float, float, float]:
    """A diffusion run's 100 guided DDIM-50 samples, ten of each digit: (seconds to sample them, the share
    the classifier reads as the digit asked for, their FID against ``real`` in the course's features)."""
    from genimg.learn.metrics import fid
    from genimg.learn.sampling import SampleRequest, sample_run

    began = time.perf_counter()
    images, _ = sample_run(run, SampleRequest(count=100, guidance=guidance, steps=50, gif=False))
    sampled = time.perf_counter() - began
    agreed = float(np.mean(clf.predict(to_digit_features(images)) == np.arange(100) % 10))
    return sampled, agreed, fid(features, real, images)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ddpm-epochs", type=int, default=150)
    parser.add_argument("--gan-epochs", type=int, default=300)
    parser.add_argument("--skip-ddpm", action="store_true")
    parser.add_argument("--skip-gan", action="store_true")
    parser.add_argument("--cgan-epochs", type=int, default=100)
    parser.add_argument("--skip-cgan", action="store_true")
    parser.add_argument("--skip-vae", action="store_true")
    parser.add_argument("--skip-ldm", action="store_true")
    parser.add_argument("--skip-flow", action="store_true")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--gan-features", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is not None:
        measure(args, args.out)
        return
    # The runs' folders go with the run, a killed one too (the folder is removed as the exception unwinds;
    # a SIGKILL leaves it under the system's temporary folder, named genimg-learn-*).
    with tempfile.TemporaryDirectory(prefix="genimg-learn-") as folder:
        measure(args, Path(folder))


def measure(args, out: Path) -> None:
    table = []  # (model, settings, training minutes, quality, FID)
    clf = digit_classifier()
    from genimg.learn import datasets
    from genimg.learn.metrics import fid, train_digit_features
    from genimg.learn.sampling import SampleRequest, sample_run

    real = datasets.load("digits", 16)
    features = train_digit_features(real.images, real.labels)
    from genimg.learn.train_dcgan import GANConfig, train_dcgan
    from genimg.learn.train_ddpm import DDPMConfig, train_ddpm

    if not args.skip_ddpm:
        config = DDPMConfig(epochs=args.ddpm_epochs)
        began = time.perf_counter()
        train_ddpm(out / "ddpm", config, overwrite=True)
        trained = time.perf_counter() - began
        sampled, agreed, value = guided_quality(out / "ddpm", clf, features, real.images, args.guidance)
        print(f"DDPM ({config.size}x{config.size}, {config.epochs} epochs, batch {config.batch}, base {config.base}, "
              f"{config.schedule} schedule): trained in {trained / 60:.1f} min; 100 DDIM-50 samples at guidance "
              f"{args.guidance} in {sampled:.1f} s; classifier agrees with the asked class for {agreed:.1%}; "
              f"FID {value:.2f}")
        table.append(("DDPM (pixels)", f"{config.epochs} epochs, base {config.base}", trained / 60,
                      f"{agreed:.1%} the digit asked for; 100 samples in {sampled:.1f} s", value))
    if not args.skip_ldm:
        from genimg.learn.train_ldm import LDMConfig, train_ldm

        config = LDMConfig()
        began = time.perf_counter()
        train_ldm(out / "ldm", config, overwrite=True)
        trained = time.perf_counter() - began
        sampled, agreed, value = guided_quality(out / "ldm", clf, features, real.images, args.guidance)
        print(f"LDM (a {config.latent}x{config.size // 4}x{config.size // 4} code of a VAE trained {config.vae_epochs} "
              f"epochs, then {config.epochs} epochs of the text-conditioned DDPM, base {config.base}): trained in "
              f"{trained / 60:.1f} min (both stages); 100 DDIM-50 samples for \"a <digit>\" at guidance {args.guidance} "
              f"in {sampled:.1f} s; classifier agrees with the asked digit for {agreed:.1%}; FID {value:.2f}")
        table.append(("LDM (4x4x4 codes, cross-attention)", f"VAE {config.vae_epochs} + {config.epochs} epochs, base "
                      f"{config.base}", trained / 60, f"{agreed:.1%} the digit asked for; 100 samples "
                      f"in {sampled:.1f} s", value))
    if not args.skip_flow:
        from genimg.learn.train_flow import FlowConfig, train_flow

        config = FlowConfig()
        began = time.perf_counter()
        train_flow(out / "flow", config, overwrite=True)
        trained = time.perf_counter() - began
        sampled, agreed, value = guided_quality(out / "flow", clf, features, real.images, args.guidance)
        print(f"Flow DiT (the same {config.latent}x{config.size // 4}x{config.size // 4} codes, VAE {config.vae_epochs} "
              f"epochs, then {config.epochs} epochs of flow matching, width {config.dim}, {config.depth} blocks): trained "
              f"in {trained / 60:.1f} min (both stages); 100 Euler-50 samples for \"a <digit>\" at guidance "
              f"{args.guidance} in {sampled:.1f} s; classifier agrees with the asked digit for {agreed:.1%}; FID {value:.2f}")
        table.append(("Flow DiT (4x4x4 codes, joint attention)", f"VAE {config.vae_epochs} + {config.epochs} epochs, "
                      f"width {config.dim}, {config.depth} blocks", trained / 60, f"{agreed:.1%} the digit asked for; "
                      f"100 samples in {sampled:.1f} s", value))
    if not (args.skip_gan and args.skip_cgan):
        from genimg.learn import datasets

        real = clf.predict_proba(to_digit_features(datasets.load("digits", 32).images))
        print(f"reference: real digits through the same round trip: {np.mean(real.max(1) >= 0.9):.1%} confident")
    for conditional, epochs, skip in ((False, args.gan_epochs, args.skip_gan), (True, args.cgan_epochs, args.skip_cgan)):
        if skip:
            continue
        config = GANConfig(epochs=epochs, conditional=conditional)
        if args.gan_features:
            config.features = args.gan_features
        run = out / ("cdcgan" if conditional else "dcgan")
        began = time.perf_counter()
        train_dcgan(run, config, overwrite=True)
        trained = time.perf_counter() - began
        images, _ = sample_run(run, SampleRequest(count=500, gif=False))
        proba = clf.predict_proba(to_digit_features(images))
        confident = np.mean(proba.max(1) >= 0.9)
        hist = np.bincount(proba.argmax(1), minlength=10) / len(proba)
        entropy = -np.sum(hist[hist > 0] * np.log(hist[hist > 0]))
        asked = (f"; labelled as the class asked for: {np.mean(proba.argmax(1) == np.arange(500) % 10):.1%}"
                 if conditional else "")
        print(f"{'conditional ' if conditional else ''}DCGAN ({config.size}x{config.size}, {config.epochs} epochs, "
              f"batch {config.batch}, features {config.features}): trained in {trained / 60:.1f} min; {confident:.1%} "
              f"of 500 samples confident (p >= 0.9); class-histogram entropy {entropy:.2f} nats (max 2.30){asked}; "
              f"histogram {np.round(hist, 3).tolist()}; FID {fid(features, real.images, images):.2f}")
        table.append((f"{'conditional ' if conditional else ''}DCGAN", f"{config.epochs} epochs", trained / 60,
                      f"{confident:.1%} confident" + (f", {np.mean(proba.argmax(1) == np.arange(500) % 10):.1%} as asked"
                                                      if conditional else ""), fid(features, real.images, images)))
    if not args.skip_vae:
        from genimg.learn.train_vae import VAEConfig, quality, train_vae

        config = VAEConfig()
        began = time.perf_counter()
        train_vae(out / "vae", config, overwrite=True)
        measured = quality(out / "vae")
        minutes = (time.perf_counter() - began) / 60
        print(f"VAE ({config.size}x{config.size}, latent {config.latent}, {config.epochs} epochs, width {config.width}, "
              f"beta {config.beta}): trained in {minutes:.1f} min; {measured}")
        table.append(("VAE", f"latent {config.latent}, {config.epochs} epochs", minutes,
                      f"{measured['prior samples read confidently']:.1%} of prior samples confident",
                      measured["fid"]))
    print("\n| model | settings | training (min) | quality | FID |\n|---|---|---|---|---|")
    for model, settings, minutes, quality, value in table:
        print(f"| {model} | {settings} | {minutes:.1f} | {quality} | {value:.2f} |")
    print(f"runs in {out}")


if __name__ == "__main__":
    main()
