"""The facts of the project, each in one place: what the reference study states (docs/STUDY.md) and which
runs the project releases. Plain data, no code: every layer may read it (cards, report, scripts, the Space).
"""

from __future__ import annotations

from typing import Any

NUM_DIGITS = 10  # MNIST's classes: a class-conditional model's labels are 0–9 (its null class is 10)

# The study's grid (β ∈ {1e-3, 1, 20} × Conv/Dense × latent dim 2/4).
STUDY_BETAS = (1e-3, 1.0, 20.0)
STUDY_ARCHS = ("conv", "dense")
STUDY_LATENT_DIMS = (2, 4)

# What the study states (docs/STUDY.md). The VAE part is qualitative; the DDPM part has numbers.
STUDY: dict[str, Any] = {
    "vae": {
        "parameters_at_z2": {"conv": 59_525, "dense": 1_068_820},
        "recipe": "20 epochs, batch 64, Adam, learning rate 1e-3, 80/20 split of the 60,000 training digits",
        "arch": {
            "conv": {
                "spatial structure": "kept",
                "reconstruction BCE (z=2)": "higher than the dense VAE",
                "latent space": "more structured",
                "training speed": "fast",
                "verdict": "recommended: best efficiency/performance trade-off; with z=4 it reconstructs "
                "about as well as the dense VAE with z=2, with 18× fewer parameters",
            },
            "dense": {
                "spatial structure": "lost",
                "reconstruction BCE (z=2)": "lower (better) than the conv VAE",
                "latent space": "more overlap between classes",
                "training speed": "slow",
                "verdict": "18× more parameters than the conv VAE for a similar result",
            },
        },
        "beta": {
            "1e-3": {
                "reconstruction": "excellent",
                "latent structure": "scattered",
                "class separation": "weak",
                "generated images": "erratic",
            },
            "1": {
                "reconstruction": "good",
                "latent structure": "structured",
                "class separation": "good",
                "generated images": "coherent",
                "verdict": "the best compromise for MNIST",
            },
            "20": {
                "reconstruction": "blurry",
                "latent structure": "over-compressed",
                "class separation": "poor",
                "generated images": "smooth / blurry, little diversity",
            },
        },
    },
    "ddpm": {
        "train_loss": 0.0278,
        "test_loss": 0.0280,
        "fid": 28.11,
        "parameters": "3.3M",
        "recipe": "20 epochs, 4000 timesteps, cosine β_t schedule, batch 128, Adam, learning rate 1e-4",
    },
}

# Shortcuts into STUDY used by the report and the scripts.
STUDY_PARAMETERS: dict[str, int] = STUDY["vae"]["parameters_at_z2"]
STUDY_DDPM: dict[str, float] = {k: STUDY["ddpm"][k] for k in ("train_loss", "test_loss", "fid")}
STUDY_DDPM_EPOCHS = 20

# The release: run names in the order they are trained, released and shown (the Space's model list derives from
# it). Each is published as `<namespace>/mnist-genlab-<name>` (hub_models.hub.naming.hub_repo_name).
RELEASE_VAES = ("vae-conv-z2-beta1", "vae-conv-z4-beta1", "vae-dense-z2-beta1", "vae-conv-z2-beta1e-3",
                "vae-conv-z2-beta20")
DDPM_RUN, CONDITIONAL_DDPM_RUN = "ddpm", "ddpm-conditional"
RELEASE_DDPMS = (CONDITIONAL_DDPM_RUN, DDPM_RUN)  # the first is the Space's default: a visitor asks for a digit
CLASSIFIER_RUN = "digit-classifier"
# The conditional VAE (issue 16): released and shown in the Space (Generate: a row per digit; the latent explorer:
# a digit selector), not one of the study's VAEs (RELEASE_VAES, which the report and the study runner measure).
RELEASE_CONDITIONAL_VAES = ("vae-conv-z2-beta1-conditional",)
RELEASE: tuple[str, ...] = (*RELEASE_VAES, *RELEASE_CONDITIONAL_VAES, *RELEASE_DDPMS, CLASSIFIER_RUN)
# The hybrids of issue 16: learned latent priors of two released VAEs (`latent-prior-<VAE run name minus "vae-">`)
# and the latent diffusion pipeline. Released and published, not shown in the Space.
RELEASE_LATENT_PRIORS = ("latent-prior-conv-z4-beta1", "latent-prior-conv-z2-beta1")
RELEASE_LDMS = ("ldm",)
RELEASE_NOT_IN_SPACE: tuple[str, ...] = (*RELEASE_LATENT_PRIORS, *RELEASE_LDMS)
PUBLISHED: tuple[str, ...] = (*RELEASE, *RELEASE_NOT_IN_SPACE)
HUB_PREFIX = "mnist-genlab"
DEFAULT_NAMESPACE = "mnist-genlab"

# The package's name: a card's install line names it only with a real source (`--source_url` or its Homepage).
PROJECT_NAME = "mnist-genlab"
