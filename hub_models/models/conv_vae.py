"""The study's convolutional β-VAE: 59,525 parameters at latent dim 2."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from hub_models.models.vae import BetaVAE, check_latent_dim, check_num_classes


class ConvVAE(BetaVAE):
    """Conv encoder 1→32→64 (3×3, stride 2) → two FC heads (μ, log σ²); FC → (64, 7, 7) → two stride-2
    transposed convs back to 1×28×28 with a Sigmoid.

    Args:
        latent_dim: size of z.
        hidden_channels: channels of the two conv levels, as in the study (32, 64).
        num_classes: 0 = the study's unconditional VAE; > 0 = a conditional VAE whose one-hot label joins the
            flattened conv features (into the two heads) and z (into the decoder's FC layer).
    """

    @register_to_config
    def __init__(self, latent_dim: int = 2, hidden_channels: tuple[int, int] = (32, 64), num_classes: int = 0):
        super().__init__()
        check_latent_dim(latent_dim)
        check_num_classes(num_classes)
        c1, c2 = hidden_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        features = c2 * 7 * 7
        self.fc_mean = nn.Linear(features + num_classes, latent_dim)
        self.fc_logvar = nn.Linear(features + num_classes, latent_dim)
        self.decoder_input = nn.Linear(latent_dim + num_classes, features)
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1),
        )

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.decoder_input(z))
