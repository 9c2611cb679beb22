"""What both β-VAEs share: the Gaussian encoder interface, the Bernoulli decoder, the study's loss and sampling.

A subclass only builds its encoder trunk (x → features), its two heads and its decoder (z → logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput


@dataclass
class VAEOutput(BaseOutput):
    """Output of a VAE forward pass.

    Args:
        sample: reconstruction probabilities `(batch, 1, 28, 28)` in [0, 1].
        logits: decoder logits `(batch, 1, 28, 28)` (the loss uses them, for numerical stability).
        mean: posterior means μ `(batch, latent_dim)`.
        logvar: posterior log-variances log σ² `(batch, latent_dim)`.
        latent: the reparameterised sample z `(batch, latent_dim)`.
    """

    sample: torch.Tensor
    logits: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    latent: torch.Tensor


@dataclass
class VAELoss:
    """Per-image averages of the study's loss terms: loss = BCE + β·KLD; ELBO = −(BCE + KLD)."""

    loss: torch.Tensor
    bce: torch.Tensor
    kld: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        return -(self.bce + self.kld)


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KLD = −½ Σⱼ (1 + log σⱼ² − μⱼ² − σⱼ²) per image, shape `(batch,)`."""
    return -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp(), dim=1)


def bernoulli_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE summed over the 784 pixels, per image `(batch,)`; from logits, equal to BCE(sigmoid(logits), x)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


class BetaVAE(ModelMixin, ConfigMixin):
    """Base class of the MNIST β-VAEs: `encode`, `decode`, `forward`, `sample`, `reconstruct`, `loss`."""

    config_name = "config.json"
    latent_dim: int

    # -- subclass hooks ------------------------------------------------------------------------------------------
    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits `(batch, 1, 28, 28)` for latents `(batch, latent_dim)`."""
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' `from_pretrained`, but strict: safetensors only (never a pickled .bin), and a checkpoint
        that lacks or adds tensors is an error instead of a silently half-initialised model."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("mnist-genlab models load from safetensors only (use_safetensors=False is refused)")
        kwargs["use_safetensors"] = True
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                                  "mismatched_keys", "error_msgs")}
        if problems:
            raise ValueError(f"{pretrained_model_name_or_path} does not match {cls.__name__}: {problems}")
        return (model, info) if want_info else model

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images `(batch, 1, 28, 28)` in [0, 1] → (μ, log σ²), each `(batch, latent_dim)`."""
        h = self.encoder_features(x)
        return self.fc_mean(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents `(batch, latent_dim)` → pixel probabilities `(batch, 1, 28, 28)`."""
        return torch.sigmoid(self.decode_logits(z))

    @staticmethod
    def reparameterize(mean: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ ⊙ ε, ε ~ N(0, I)."""
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                return_dict: bool = True) -> VAEOutput | tuple:
        mean, logvar = self.encode(x)
        z = self.reparameterize(mean, logvar, generator)
        logits = self.decode_logits(z)
        out = VAEOutput(sample=torch.sigmoid(logits), logits=logits, mean=mean, logvar=logvar, latent=z)
        return out if return_dict else out.to_tuple()

    def loss(self, x: torch.Tensor, beta: float = 1.0, generator: torch.Generator | None = None,
             output: VAEOutput | None = None) -> VAELoss:
        """The study's loss per image: BCE(sum over pixels) + β·KLD, averaged over the batch."""
        output = output if output is not None else self(x, generator=generator)
        bce = bernoulli_bce(output.logits, x).mean()
        kld = kl_to_standard_normal(output.mean, output.logvar).mean()
        return VAELoss(loss=bce + beta * kld, bce=bce, kld=kld)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode `n` latents z ~ N(0, I): images `(n, 1, 28, 28)` in [0, 1]."""
        z = torch.randn((n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior means: the deterministic reconstruction `(batch, 1, 28, 28)`."""
        mean, _ = self.encode(x)
        return self.decode(mean)


def check_latent_dim(latent_dim: int) -> None:
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
