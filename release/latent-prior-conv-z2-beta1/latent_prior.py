"""LatentPrior of mnist-genlab 0.1.0, generated from the library's source
(hub_models.models.latent_prior and what it uses) when this repository was pushed: re-push rather than edit.
It imports only torch, diffusers and the standard library. Loaded with diffusers alone
(REPO: this repository's id or folder):

    from diffusers import AutoModel

    model = AutoModel.from_pretrained(REPO, trust_remote_code=True)

With mnist-genlab installed, `hub_models.hub.load(REPO)` builds the installed class and never runs this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn


@dataclass
class LatentPriorOutput(BaseOutput):
    """Args:
    sample: the prediction `(batch, latent_dim)` in the standardised latent space: v or the noise ε, as the
        scheduler's `prediction_type` says.
    """

    sample: torch.Tensor


class ResidualMLPBlock(nn.Module):
    """h + FC(SiLU(LN(FC(SiLU(LN(h))) + W·t_emb))): a pre-norm residual MLP block with the time added inside."""

    def __init__(self, hidden_dim: int, time_dim: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(hidden_dim), nn.LayerNorm(hidden_dim)
        self.fc1, self.fc2 = nn.Linear(hidden_dim, hidden_dim), nn.Linear(hidden_dim, hidden_dim)
        self.time_proj = nn.Linear(time_dim, hidden_dim)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        r = self.fc1(F.silu(self.norm1(h))) + self.time_proj(temb)
        return h + self.fc2(F.silu(self.norm2(r)))


class LatentPrior(ModelMixin, ConfigMixin):
    """Denoising MLP (v- or ε-prediction) for latents `(batch, latent_dim)` of a β-VAE.

    Args:
        latent_dim: size of the VAE's z.
        hidden_dim: width of the residual blocks.
        num_blocks: number of residual MLP blocks.
        time_embed_dim: size of the sinusoidal timestep embedding (diffusers' `Timesteps` + `TimestepEmbedding`).
        vae_name_or_path: the VAE whose posterior means it was trained on (a Hub repo id or folder; informative:
            the latents of another VAE are meaningless to it).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 2,
        hidden_dim: int = 256,
        num_blocks: int = 3,
        time_embed_dim: int = 64,
        vae_name_or_path: str | None = None,
    ):
        super().__init__()
        if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if not isinstance(num_blocks, int) or num_blocks < 1 or not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ValueError(f"hidden_dim and num_blocks must be positive integers, got {hidden_dim!r}, {num_blocks!r}")
        self.time_proj = Timesteps(time_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(time_embed_dim, hidden_dim)
        self.input = nn.Linear(latent_dim, hidden_dim)
        self.blocks = nn.ModuleList(ResidualMLPBlock(hidden_dim, hidden_dim) for _ in range(num_blocks))
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.output = nn.Linear(hidden_dim, latent_dim)
        # Standardisation of the VAE's posterior means (set by `set_latent_stats` before training).
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))

    @torch.no_grad()
    def set_latent_stats(self, latents: torch.Tensor) -> None:
        """Store the mean and standard deviation of the training latents `(N, latent_dim)`."""
        self.latent_mean.copy_(latents.mean(0))
        self.latent_std.copy_(latents.std(0).clamp_min(1e-6))

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean) / self.latent_std

    def unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.latent_std + self.latent_mean

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor | float | int, return_dict: bool = True
    ) -> LatentPriorOutput | tuple:
        """The prediction (v or ε) for standardised noisy latents `sample` `(batch, latent_dim)` at `timestep`
        (a scalar or `(batch,)`)."""
        t = torch.as_tensor(timestep, device=sample.device)
        if t.ndim == 0:
            t = t.expand(len(sample))
        temb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        h = self.input(sample)
        for block in self.blocks:
            h = block(h, temb)
        out = self.output(F.silu(self.norm_out(h)))
        return LatentPriorOutput(sample=out) if return_dict else (out,)


__all__ = ["LatentPrior"]
