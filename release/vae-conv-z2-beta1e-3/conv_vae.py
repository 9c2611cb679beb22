"""ConvVAE of mnist-genlab 0.1.0, generated from the library's source
(hub_models.models.conv_vae and what it uses) when this repository was pushed: re-push rather than edit.
It imports only torch, diffusers and the standard library. Loaded with diffusers alone
(REPO: this repository's id or folder):

    from diffusers import AutoModel

    model = AutoModel.from_pretrained(REPO, trust_remote_code=True)

With mnist-genlab installed, `hub_models.hub.load(REPO)` builds the installed class and never runs this file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn


@dataclass
class VAEOutput(BaseOutput):
    """Output of a VAE forward pass.

    Args:
        sample: reconstruction probabilities `(batch, channels, height, width)` in [0, 1] (`(batch, 1, 28, 28)`
            for MNIST).
        logits: decoder logits `(batch, channels, height, width)` (the loss uses them, for numerical stability).
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
    """BCE summed over every pixel and channel (784 for MNIST), per image `(batch,)`; from logits, equal to
    BCE(sigmoid(logits), x)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


Labels = int | Sequence[int] | torch.Tensor


class BetaVAE(ModelMixin, ConfigMixin):
    """Base class of the study's β-VAEs: `encode`, `decode`, `forward`, `sample`, `reconstruct`, `loss`.

    Images are `(batch, in_channels, sample_size, sample_size)` in [0, 1] (config; MNIST: `(batch, 1, 28, 28)`).

    Conditional models (`config.num_classes > 0`) need `labels` (digits 0..num_classes-1, one per image, or one
    for all) in every one of them; unconditional models refuse them.
    """

    config_name = "config.json"
    latent_dim: int

    # -- subclass hooks ------------------------------------------------------------------------------------------
    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits `(batch, C, H, W)` for decoder inputs `(batch, latent_dim + num_classes)`."""
        raise NotImplementedError

    # -- shape -----------------------------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """`(channels, height, width)` of the images the model encodes and generates ((1, 28, 28): MNIST, and
        every config written before the shape was recorded)."""
        size = int(getattr(self.config, "sample_size", 28))
        return int(getattr(self.config, "in_channels", 1)), size, size

    # -- conditioning ----------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Classes of a conditional VAE; 0 for an unconditional one (configs written before it existed)."""
        return int(getattr(self.config, "num_classes", 0) or 0)

    @property
    def is_conditional(self) -> bool:
        return self.num_classes > 0

    def check_labels(self, labels: Labels | None, batch: int) -> torch.Tensor | None:
        """`labels` as a LongTensor `(batch,)` on the model's device (None for an unconditional model), or a
        one-line ValueError: missing labels for a conditional model, labels for an unconditional one, digits
        outside 0..num_classes-1, non-integers, or not one label per image."""
        n = self.num_classes
        if n == 0:
            if labels is not None:
                raise ValueError(f"{type(self).__name__} is unconditional (num_classes=0): it takes no labels")
            return None
        if labels is None:
            raise ValueError(
                f"this {type(self).__name__} is conditional (num_classes={n}): pass labels, digits 0–{n - 1}"
            )
        try:
            t = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"labels must be whole numbers 0–{n - 1}, got {labels!r}") from None
        if t.dtype == torch.bool or t.is_complex() or t.ndim > 1 or t.numel() == 0:
            raise ValueError(f"labels must be one digit or a 1-D list of digits 0–{n - 1}, got {labels!r}")
        if t.dtype.is_floating_point and not torch.equal(t, t.round()):
            raise ValueError(f"labels must be whole numbers 0–{n - 1}, got {t.tolist()}")
        bad = t[(t < 0) | (t >= n)]
        if len(bad):
            raise ValueError(f"labels must be digits 0–{n - 1}, got {bad.unique().tolist()}")
        t = t.long().to(self.device)
        if t.ndim == 0:
            t = t.repeat(batch)
        if len(t) != batch:
            raise ValueError(f"{len(t)} labels for a batch of {batch}: give one label per image (or one for all)")
        return t

    def _condition(self, h: torch.Tensor, labels: Labels | None) -> torch.Tensor:
        """`h` with the one-hot labels concatenated (`h` itself, untouched, for an unconditional model)."""
        checked = self.check_labels(labels, len(h))
        if checked is None:
            return h
        return torch.cat([h, F.one_hot(checked, self.num_classes).to(h.dtype)], dim=1)

    def decode_logits(self, z: torch.Tensor, labels: Labels | None = None) -> torch.Tensor:
        """Decoder logits `(batch, C, H, W)` for latents `(batch, latent_dim)` (and labels `(batch,)`)."""
        return self.decoder_logits(self._condition(z, labels))

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
        problems = {
            k: v
            for k, v in info.items()
            if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")
        }
        if problems:
            raise ValueError(f"{pretrained_model_name_or_path} does not match {cls.__name__}: {problems}")
        return (model, info) if want_info else model

    def encode(self, x: torch.Tensor, labels: Labels | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images `(batch, C, H, W)` in [0, 1] (and labels `(batch,)`) → (μ, log σ²), each `(batch, latent_dim)`."""
        h = self._condition(self.encoder_features(x), labels)
        return self.fc_mean(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor, labels: Labels | None = None) -> torch.Tensor:
        """Latents `(batch, latent_dim)` (and labels `(batch,)`) → pixel probabilities `(batch, C, H, W)`."""
        return torch.sigmoid(self.decode_logits(z, labels))

    @staticmethod
    def reparameterize(
        mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = μ + σ ⊙ ε, ε ~ N(0, I)."""
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    def forward(
        self,
        x: torch.Tensor,
        labels: Labels | None = None,
        *,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> VAEOutput | tuple:
        """Encode, draw z ~ q(z|x), decode. `labels` `(batch,)`: the digits, for a conditional model only."""
        mean, logvar = self.encode(x, labels)
        z = self.reparameterize(mean, logvar, generator)
        logits = self.decode_logits(z, labels)
        out = VAEOutput(sample=torch.sigmoid(logits), logits=logits, mean=mean, logvar=logvar, latent=z)
        return out if return_dict else out.to_tuple()

    def loss(
        self,
        x: torch.Tensor,
        beta: float = 1.0,
        generator: torch.Generator | None = None,
        output: VAEOutput | None = None,
        labels: Labels | None = None,
    ) -> VAELoss:
        """The study's loss per image: BCE(sum over pixels) + β·KLD, averaged over the batch."""
        output = output if output is not None else self(x, labels, generator=generator)
        bce = bernoulli_bce(output.logits, x).mean()
        kld = kl_to_standard_normal(output.mean, output.logvar).mean()
        return VAELoss(loss=bce + beta * kld, bce=bce, kld=kld)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Labels | None = None) -> torch.Tensor:
        """Decode `n` latents z ~ N(0, I): images `(n, C, H, W)` in [0, 1] (`(n, 1, 28, 28)` for MNIST); a
        conditional model draws images of class `labels` (one per image, or one class for all)."""
        checked = self.check_labels(labels, n)  # before drawing: a bad label consumes no random numbers
        z = torch.randn((n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype)
        return self.decode(z, checked)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: Labels | None = None) -> torch.Tensor:
        """Decode the posterior means: the deterministic reconstruction `(batch, C, H, W)` of `x`."""
        mean, _ = self.encode(x, labels)
        return self.decode(mean, labels)


def check_latent_dim(latent_dim: int) -> None:
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")


def check_image_shape(in_channels: int, sample_size: int) -> None:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer (1: greyscale, 3: RGB), got {in_channels!r}")
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 1:
        raise ValueError(f"sample_size (image height = width) must be a positive integer, got {sample_size!r}")


def check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be 0 (unconditional) or a positive integer, got {num_classes!r}")


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


__all__ = ["ConvVAE"]
