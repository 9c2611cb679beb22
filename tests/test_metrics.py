"""FID (standard Inception, offline), Fréchet distances, digit-classifier metrics and VAE metrics on tiny inputs."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

N = 32  # images per set: Inception costs ~85 ms per image on 2 cores


@pytest.fixture(scope="module")
def fid_sets(tiny_mnist_cache):
    """Inception statistics of real reference digits and of two corrupted copies (computed once)."""
    from hub_models.evaluation import FeatureStats, reference_images, reference_stats
    from hub_models.evaluation.inception import inception_features

    real = reference_images("mnist-test", N)
    ref = reference_stats("mnist-test", N)  # cached under the tiny cache's fid/stats
    x = real.unsqueeze(1).float() / 255
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    k = torch.exp(-torch.arange(-4, 5).float() ** 2 / (2 * 1.5**2))
    k = (k[:, None] * k[None, :] / k.sum() ** 2)[None, None]
    blurred = F.conv2d(x, k, padding=4)
    feats = inception_features(torch.cat([noisy, blurred]))
    return {"real": real, "ref": ref, "noisy": FeatureStats.from_features(feats[:N]),
            "noisy_features": feats[:N], "blurred": FeatureStats.from_features(feats[N:])}


def test_network_file_is_the_standard_one(tiny_mnist_cache):
    from hub_models.evaluation.inception import NETWORK_SHA1, network_path

    h = hashlib.sha1(network_path().read_bytes()).hexdigest()
    assert h == NETWORK_SHA1 == "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


def test_preprocess_convention():
    from hub_models.evaluation.inception import preprocess, to_uint8

    x = torch.tensor([[[0.0, 0.5], [1.0, 0.25]]])  # floats in [0, 1] are quantized first
    q = to_uint8(x)
    assert q.dtype == torch.uint8 and q.tolist() == [[[0, 128], [255, 64]]]
    assert torch.equal(to_uint8(x.unsqueeze(1)), q)
    out = preprocess(torch.zeros(2, 28, 28, dtype=torch.uint8))
    assert out.shape == (2, 3, 299, 299) and torch.all(out == -1)
    out = preprocess(torch.full((1, 28, 28), 255, dtype=torch.uint8))
    assert torch.allclose(out, torch.tensor(127 / 128))


def test_frechet_distance_closed_form_and_both_paths():
    from hub_models.evaluation import FeatureStats, frechet_distance

    d = 8
    a = FeatureStats(np.zeros(d), np.eye(d), 1000)
    b = FeatureStats(np.full(d, 0.5), 4 * np.eye(d), 1000)
    # |μa − μb|² + tr(I) + tr(4I) − 2 tr(2I) = 8·0.25 + 8 + 32 − 32
    assert frechet_distance(a, b) == pytest.approx(2 + 8, rel=1e-9)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, d)), rng.normal(1, 2, size=(6, d))
    sx, sy = FeatureStats.from_features(x), FeatureStats.from_features(y)
    assert sx.centered is not None  # fewer samples than dimensions: the n×n SVD path
    low_rank = frechet_distance(sx, sy)
    sx.centered = sy.centered = None  # the dense eigendecomposition path
    assert low_rank == pytest.approx(frechet_distance(sx, sy), rel=1e-6)
    assert frechet_distance(sx, sx) == pytest.approx(0, abs=1e-9)


@pytest.mark.slow
def test_fid_identical_set_is_zero(fid_sets):
    from hub_models.evaluation import fid

    ref = fid_sets["ref"]
    result = fid(features=ref.centered + ref.mu, reference="mnist-test", n_ref=N, floor=False)
    assert result["fid"] == pytest.approx(0, abs=1e-6)
    assert result["n_gen"] == result["n_ref"] == N and result["reference"] == "mnist-test"
    from hub_models.evaluation.inception import fid_cache_dir

    # cached, keyed by the network and the input convention: statistics of another resize are never reused
    assert len(list((fid_cache_dir() / "stats").glob(f"ref-mnist-test-n{N}-*-tf1-bilinear.safetensors"))) == 1
    assert result["preprocessing"] == "tf1-bilinear" and "TF1 resize_bilinear" in result["network"]


@pytest.mark.slow
def test_fid_corrupted_sets_score_worse_than_the_real_floor(fid_sets):
    from hub_models.evaluation import fid, format_fid

    noisy = fid(features=fid_sets["noisy_features"], reference="mnist-test", n_ref=N)
    assert noisy["floor_n"] == N and noisy["floor"] > 0  # real digits disjoint from the reference, same N
    from hub_models.evaluation import frechet_distance

    blurred = frechet_distance(fid_sets["blurred"], fid_sets["ref"])
    assert noisy["fid"] > 1.5 * noisy["floor"]
    assert blurred > 1.2 * noisy["floor"]
    import json

    from hub_models.evaluation.inception import fid_cache_dir

    floors = json.loads((fid_cache_dir() / "stats" / "floors.json").read_text())
    assert noisy["floor"] in floors.values()  # cached: the next FID at this N costs no Inception pass
    assert all(key.endswith("-tf1-bilinear") for key in floors)
    line = format_fid(noisy)
    assert f"N={N}" in line and "mnist-test" in line and "floor" in line


@pytest.mark.slow
def test_fid_module_matches_the_function(fid_sets):
    import evaluate

    from hub_models.evaluation import fid

    module = evaluate.load("hub_models/evaluation/modules/fid")
    few = fid_sets["real"][:16]
    out = module.compute(predictions=few, reference="mnist-test", n_ref=N, floor=False)
    direct = fid(few, "mnist-test", N, floor=False)
    assert out["fid"] == pytest.approx(direct["fid"], rel=1e-6)
    assert out["n_gen"] == 16 and out["n_ref"] == N


def test_reference_and_floor_sets_are_disjoint_real_digits(tiny_mnist_cache):
    from hub_models.evaluation import floor_images, reference_images

    ref, pool = reference_images("mnist-test", 64), floor_images("mnist-test", 64)
    assert ref.shape == pool.shape == (64, 28, 28) and ref.dtype == torch.uint8
    assert not torch.equal(ref, pool)
    assert torch.equal(ref, reference_images("mnist-test", 64))  # seeded
    with pytest.raises(ValueError, match="unknown reference"):
        reference_images("cifar")


# ---- digit classifier metrics -------------------------------------------------------------------------------
def test_classifier_metrics_real_vs_degenerate(tiny_mnist_cache):
    from hub_models.evaluation import classifier_metrics, load_digit_classifier, reference_images

    clf = load_digit_classifier()  # the shipped release/digit-classifier
    real = reference_images("mnist-test", 128)
    good = classifier_metrics(real, clf, reference="mnist-test", n_ref=128)
    assert good["confident_share"] > 0.9
    assert good["fd_classifier"] == pytest.approx(0, abs=1e-6)  # identical to the reference
    assert good["fd_classifier_floor"] > 0
    assert sum(good["class_counts"]) == 128 and good["kl_to_uniform"] < 0.2

    labels = clf.predict(real.unsqueeze(1) / 255.0)[2]
    ones = real[labels == 1]
    collapsed = ones[:1].repeat(64, 1, 1)  # one digit, 64 times: total mode collapse
    bad = classifier_metrics(collapsed, clf, reference="mnist-test", n_ref=128)
    assert bad["kl_to_uniform"] == pytest.approx(math.log(10))
    assert bad["class_histogram"][1] == 1.0
    assert bad["fd_classifier"] > 5 * bad["fd_classifier_floor"]


def test_class_accuracy_reads_the_requested_digit(tiny_mnist_cache):
    from hub_models.data import load_splits
    from hub_models.evaluation import classifier_metrics, load_digit_classifier

    clf = load_digit_classifier()
    test = load_splits("official")[1]
    images, labels = test.images[:200], test.labels[:200]
    right = classifier_metrics(images, clf, reference=None, requested=labels)
    wrong = classifier_metrics(images, clf, reference=None, requested=(labels + 1) % 10)
    assert right["class_accuracy"] > 0.95 and wrong["class_accuracy"] < 0.05
    per_digit = right["class_accuracy_per_digit"]
    assert len(per_digit) == 10 and all(a is None or 0.8 <= a <= 1 for a in per_digit)
    assert "class_accuracy" not in classifier_metrics(images, clf, reference=None)
    with pytest.raises(ValueError, match="requested holds"):
        classifier_metrics(images, clf, reference=None, requested=labels[:10])


def test_digit_metrics_module(tiny_mnist_cache):
    import evaluate

    from hub_models.evaluation import classifier_metrics, reference_images

    real = reference_images("mnist-test", 64)
    out = evaluate.load("hub_models/evaluation/modules/digit_metrics").compute(predictions=real.unsqueeze(1) / 255.0,
                                                                  n_ref=64)
    direct = classifier_metrics(real, reference="mnist-test", n_ref=64)
    assert out["class_counts"] == direct["class_counts"]
    assert out["fd_classifier"] == pytest.approx(direct["fd_classifier"], abs=1e-6)


# ---- VAE metrics ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_vae(tiny_mnist_cache):
    from hub_models.data import load_splits
    from hub_models.study.anomaly import train_vae

    train, test = load_splits("official")
    return train_vae(train.as_float(), "conv", latent_dim=2, epochs=2), test


@pytest.mark.slow
def test_vae_metrics_match_the_loss_and_nll_bounds_elbo(tiny_vae):
    from hub_models.evaluation import vae_metrics

    model, test = tiny_vae
    cheap = vae_metrics(model, test, batch_size=100)
    assert set(cheap) == {"n", "bce", "kld", "elbo"} and cheap["n"] == len(test)
    assert cheap["elbo"] == pytest.approx(-(cheap["bce"] + cheap["kld"]))
    assert vae_metrics(model, test.images)["bce"] == pytest.approx(cheap["bce"], rel=1e-5)  # uint8 == floats

    with torch.no_grad():
        mean, logvar = model.encode(test.as_float())
    from hub_models.models.vae import kl_to_standard_normal

    assert cheap["kld"] == pytest.approx(kl_to_standard_normal(mean, logvar).mean().item(), rel=1e-4)

    full = vae_metrics(model, test, nll_samples=200, nll_limit=64, nll_chunk=3000)
    single = vae_metrics(model, test, nll_samples=1, nll_limit=64)
    assert full["nll_samples"] == 200 and full["nll_n"] == 64
    # Importance sampling tightens the bound: NLL_k ≤ NLL_1 ≈ −ELBO, and the NLL stays positive.
    assert 0 < full["nll"] < single["nll"]
    assert full["nll"] < -vae_metrics(model, test.subset(64))["elbo"]


def test_vae_nll_module(tiny_vae):
    import evaluate

    from hub_models.evaluation import vae_metrics

    model, test = tiny_vae
    out = evaluate.load("hub_models/evaluation/modules/vae_nll").compute(predictions=test.images[:32], model=model,
                                                            nll_samples=50)
    assert out == pytest.approx(vae_metrics(model, test.images[:32], nll_samples=50))


def test_processes_asking_for_the_same_statistics_compute_them_once(tmp_path, monkeypatch):
    """A reference set's statistics cost ~25 min of a core: two scorers that need them at once share one pass."""
    import threading
    import time

    import hub_models.evaluation.metrics as metrics

    calls = []

    def slow_features(images, batch_size=50, progress=False):
        calls.append(len(images))
        time.sleep(0.5)  # long enough for the other caller to arrive while this one computes
        return np.random.default_rng(len(calls)).normal(size=(len(images), 8))

    monkeypatch.setattr(metrics, "inception_features", slow_features)
    monkeypatch.setattr(metrics, "_stats_dir", lambda: tmp_path)
    images = torch.zeros(20, 28, 28, dtype=torch.uint8)
    results = []
    workers = [threading.Thread(target=lambda: results.append(metrics.inception_stats(images, "ref-x")))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert calls == [20]  # one pass; the second caller read the cache
    assert np.array_equal(results[0].mu, results[1].mu) and np.array_equal(results[0].sigma, results[1].sigma)
    metrics.inception_stats(images[:10], "ref-x")  # other pixels: their own statistics
    assert calls == [20, 10]
