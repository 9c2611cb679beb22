"""mnist-genlab's library: data, models, sampling, metrics, cards and Hub helpers shared by every script."""

from .conv_vae import ConvVAE
from .data import ImageSplit, load_mnist, load_mnist_arrays, load_splits
from .ddpm import load_ddpm
from .dense_vae import DenseVAE
from .digit_classifier import DigitClassifier
from .hub import load
from .sampling import SAMPLERS, sample_images
from .unet import make_unet
from .vae import BetaVAE, VAELoss, VAEOutput

VAE_CLASSES = {"conv": ConvVAE, "dense": DenseVAE}

__all__ = [
    "SAMPLERS",
    "VAE_CLASSES",
    "BetaVAE",
    "ConvVAE",
    "DenseVAE",
    "DigitClassifier",
    "ImageSplit",
    "VAELoss",
    "VAEOutput",
    "load",
    "load_ddpm",
    "load_mnist",
    "load_mnist_arrays",
    "load_splits",
    "make_unet",
    "sample_images",
]
