"""What the three `evaluate` modules in `hub_models/evaluation/modules/` share: one `MetricInfo` built from the
module's texts and an `add_batch` that stores any accepted image format as floats in [0, 1].

A module subclasses `module_base.ImagesMetric` through the module (`from hub_models.evaluation import
module_base`), never by importing the class: `evaluate.load` takes the first metric class it finds in the script.
"""

from __future__ import annotations

from typing import Any, ClassVar

import evaluate

from hub_models.evaluation.metrics import module_features, module_images


class ImagesMetric(evaluate.Metric):
    """An `evaluate.Metric` whose `predictions` are digits `(N, 1, 28, 28)`; subclasses set the texts and
    `_compute`."""

    DESCRIPTION: ClassVar[str] = ""
    INPUTS: ClassVar[str] = ""
    CITATION: ClassVar[str] = ""
    REFERENCE_URLS: ClassVar[tuple[str, ...]] = ()

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(module_type="metric", description=self.DESCRIPTION, citation=self.CITATION,
                                   inputs_description=self.INPUTS, features=module_features(),
                                   reference_urls=list(self.REFERENCE_URLS))

    def add_batch(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> None:
        """Add generated/test images (uint8 or floats in [0, 1]); stored as floats in [0, 1]."""
        super().add_batch(predictions=module_images(predictions), **kwargs)


__all__ = ["ImagesMetric"]
