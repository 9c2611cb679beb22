"""Digit-classifier metrics of generated MNIST digits, as an `evaluate` module.

    digits = evaluate.load("hub_models/evaluation/modules/digit_metrics")
    digits.compute(predictions=samples)   # recognisable share, class histogram, KL to uniform, FD-classifier

The computation lives in `hub_models.evaluation.classifier_metrics`; this module only wraps it.
"""

import evaluate

from hub_models.evaluation import module_base
from hub_models.evaluation.metrics import classifier_metrics, load_digit_classifier, module_images

_DESCRIPTION = """\
What the project's MNIST digit classifier (release/digit-classifier, ≥ 99 % test accuracy) says about generated
digits: the share classified with confidence > 0.9 ("recognisable"), the histogram of predicted classes and its KL
divergence to the uniform distribution (mode coverage: 0 = balanced, ln 10 = one digit only), and the FD-classifier:
a Fréchet distance on the classifier's penultimate features against real digits (cheap and MNIST-specific; it is
not an FID and is not comparable with FIDs), with its real-vs-real floor at the same N.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images, uint8 (N, 28, 28) or floats in [0, 1] (N, 1, 28, 28).
    classifier: a DigitClassifier or a folder (default: release/digit-classifier or $MNIST_GENLAB_CLASSIFIER).
    reference: reference set of the FD-classifier ("mnist-test" default, "study-test", or None to skip it).
    n_ref: number of reference digits (default: all).
    threshold: confidence threshold of the recognisable share (0.9).
Returns:
    n, confident_share, mean_confidence, class_counts, class_histogram, kl_to_uniform, fd_classifier,
    fd_classifier_floor, reference, n_ref.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DigitMetrics(module_base.ImagesMetric):
    DESCRIPTION, INPUTS = _DESCRIPTION, _KWARGS_DESCRIPTION

    def _compute(self, predictions, classifier=None, reference="mnist-test", n_ref=None, threshold=0.9):
        if classifier is not None and not hasattr(classifier, "predict"):

            classifier = load_digit_classifier(classifier)
        return classifier_metrics(module_images(predictions), classifier, reference, n_ref, threshold)
