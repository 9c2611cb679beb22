"""β-VAE test metrics (BCE, KLD, ELBO and the importance-sampled NLL), as an `evaluate` module.

    vae_nll = evaluate.load("hub_models/evaluation/modules/vae_nll")
    vae_nll.compute(predictions=test_images, model=vae, nll_samples=1000)

The computation lives in `hub_models.evaluation.vae_metrics`; this module only wraps it.
"""

import evaluate

from hub_models.evaluation import module_base
from hub_models.evaluation.metrics import module_images, vae_metrics
from hub_models.models.registry import VAE_CLASSES

_DESCRIPTION = """\
Per-image test metrics of a β-VAE on real digits, in nats: BCE (summed over the 784 pixels) and KLD from one
posterior sample, ELBO = −(BCE + KLD), and the importance-sampled negative log-likelihood
−log (1/k) Σ p(x|zᵢ) p(zᵢ) / q(zᵢ|x) with zᵢ ~ q(z|x) (k = 1000 by default; NLL ≤ −ELBO in expectation).
On grey-level MNIST the Bernoulli decoder's BCE is not a normalised likelihood of the pixel values, so these
numbers rank our models against each other; they are not comparable with binarised-MNIST NLLs in the literature.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: real test images, uint8 (N, 28, 28) or floats in [0, 1] (N, 1, 28, 28).
    model: a BetaVAE (ConvVAE/DenseVAE) or the folder of one (loaded with from_pretrained).
    nll_samples: k of the NLL estimate (1000; 0 skips it).
    nll_limit: estimate the NLL on the first nll_limit images only (default: all).
    batch_size: images per forward pass.
    seed: seed of the posterior samples.
Returns:
    n, bce, kld, elbo, and with nll_samples > 0: nll, nll_samples, nll_n.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VaeNll(module_base.ImagesMetric):
    DESCRIPTION, INPUTS = _DESCRIPTION, _KWARGS_DESCRIPTION

    def _compute(self, predictions, model=None, nll_samples=1000, nll_limit=None, batch_size=1000, seed=0):
        if model is None:
            raise ValueError("pass model=<a BetaVAE or its folder>")
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            model = _load_vae(model)
        return vae_metrics(model, module_images(predictions), batch_size=batch_size, nll_samples=nll_samples,
                           nll_limit=nll_limit, seed=seed)


def _load_vae(path):
    import json
    from pathlib import Path


    name = json.loads((Path(path) / "config.json").read_text())["_class_name"]
    cls = {c.__name__: c for c in VAE_CLASSES.values()}[name]
    return cls.from_pretrained(path).eval()
