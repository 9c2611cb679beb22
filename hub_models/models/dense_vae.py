"""The study's dense (fully connected) β-VAE: 1,068,820 parameters at latent dim 2 (MNIST's 1×28×28)."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from hub_models.models.vae import BetaVAE, check_image_shape, check_latent_dim, check_num_classes


class DenseVAE(BetaVAE):
    """C·S·S → 512 → 256 → two FC heads (μ, log σ²); z → 256 → 512 → C·S·S logits, reshaped to C×S×S (784 and
    1×28×28 for MNIST). C = `in_channels`, S = `sample_size` (any size: the image is flattened).

    Args:
        latent_dim: size of z.
        hidden_sizes: widths of the hidden layers, as in the study (512, 256).
        num_classes: 0 = the study's unconditional VAE; > 0 = a conditional VAE whose one-hot label joins the
            256 encoder features (into the two heads) and z (into the decoder's first layer).
        in_channels: image channels C: 1 (greyscale, MNIST), 3 (RGB).
        sample_size: image height = width S (28 for MNIST).
    """

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 2,
        hidden_sizes: tuple[int, int] = (512, 256),
        num_classes: int = 0,
        in_channels: int = 1,
        sample_size: int = 28,
    ):
        super().__init__()
        check_latent_dim(latent_dim)
        check_num_classes(num_classes)
        check_image_shape(in_channels, sample_size)
        h1, h2 = hidden_sizes
        pixels = in_channels * sample_size * sample_size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.fc_mean = nn.Linear(h2 + num_classes, latent_dim)
        self.fc_logvar = nn.Linear(h2 + num_classes, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim + num_classes, h2),
            nn.ReLU(),
            nn.Linear(h2, h1),
            nn.ReLU(),
            nn.Linear(h1, pixels),
            nn.Unflatten(1, (in_channels, sample_size, sample_size)),
        )

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
