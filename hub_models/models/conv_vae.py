"""The study's convolutional β-VAE: 59,525 parameters at latent dim 2 (MNIST's 1×28×28)."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from hub_models.models.vae import BetaVAE, check_image_shape, check_latent_dim, check_num_classes

# Two stride-2 levels down, two stride-2 transposed convs up: the decoder gives back the input size only when it
# is a multiple of 4 (a 30×30 input is encoded at 8×8 and decoded at 32×32).
CONV_VAE_DOWNSAMPLING = 4


def check_conv_sample_size(sample_size: int) -> None:
    """A one-line ValueError naming the sizes that work when `sample_size` is not a multiple of 4."""
    k = CONV_VAE_DOWNSAMPLING
    if sample_size % k:
        nearest = sorted({max(sample_size // k * k, k), (sample_size // k + 1) * k})
        raise ValueError(
            f"ConvVAE needs sample_size divisible by {k} (two stride-2 levels): 4, 8, ..., 28, 32, 64, ...; got "
            f"{sample_size} (nearest: {' or '.join(map(str, nearest))}; DenseVAE takes any size)"
        )


class ConvVAE(BetaVAE):
    """Conv encoder C→32→64 (3×3, stride 2) → two FC heads (μ, log σ²); FC → (64, S/4, S/4) → two stride-2
    transposed convs back to C×S×S (logits; `decode` applies the sigmoid). C = `in_channels`, S = `sample_size`.

    Args:
        latent_dim: size of z.
        hidden_channels: channels of the two conv levels, as in the study (32, 64).
        num_classes: 0 = the study's unconditional VAE; > 0 = a conditional VAE whose one-hot label joins the
            flattened conv features (into the two heads) and z (into the decoder's FC layer).
        in_channels: image channels C: 1 (greyscale, MNIST), 3 (RGB).
        sample_size: image height = width S; a multiple of 4 (4, 8, ..., 28, 32, 64, ...). 28 is MNIST.
    """

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 2,
        hidden_channels: tuple[int, int] = (32, 64),
        num_classes: int = 0,
        in_channels: int = 1,
        sample_size: int = 28,
    ):
        super().__init__()
        check_latent_dim(latent_dim)
        check_num_classes(num_classes)
        check_image_shape(in_channels, sample_size)
        check_conv_sample_size(sample_size)
        c1, c2 = hidden_channels
        s = sample_size // CONV_VAE_DOWNSAMPLING  # 7 for MNIST
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        features = c2 * s * s
        self.fc_mean = nn.Linear(features + num_classes, latent_dim)
        self.fc_logvar = nn.Linear(features + num_classes, latent_dim)
        self.decoder_input = nn.Linear(latent_dim + num_classes, features)
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.Unflatten(1, (c2, s, s)),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, in_channels, 3, stride=2, padding=1, output_padding=1),
        )

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.decoder_input(z))
