"""mnist-genlab's library: data, models, sampling, metrics, cards and Hub helpers shared by every script."""

from .conv_vae import ConvVAE
from .data import ImageSplit, load_mnist, load_mnist_arrays, load_splits
from .dense_vae import DenseVAE
from .hub import load
from .vae import BetaVAE, VAELoss, VAEOutput

VAE_CLASSES = {"conv": ConvVAE, "dense": DenseVAE}

__all__ = [
    "VAE_CLASSES",
    "BetaVAE",
    "ConvVAE",
    "DenseVAE",
    "ImageSplit",
    "VAELoss",
    "VAEOutput",
    "load",
    "load_mnist",
    "load_mnist_arrays",
    "load_splits",
]
