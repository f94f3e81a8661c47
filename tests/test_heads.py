"""The search heads (mpqlib.search.heads): interface, frozen normalisation, pre-fit, report."""

import math
import pytest
import torch
import torch.nn.functional as F

from mpqlib import data as D
from mpqlib.config import CEConfig, SeamConfig, TargetConfig
from mpqlib.discriminability import LGMLoss, LinearCEHead, centroids
from mpqlib.errors import ConfigError, DataError
from mpqlib.search import heads as H

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (tests/conftest.py)




def shifted_clusters(k=4, d=6, n=60, seed=0):
    """Overlapping Gaussian classes far from the origin with very different scales per
    dimension (like pooled ReLU features: offset, anisotropic); train and held-out halves."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g)
    scale = torch.logspace(-2, 0, d)
    f = (5 + centres[:, None, :] + 0.7 * torch.randn(k, 2 * n, d, generator=g)) * scale
    y = torch.arange(k)[:, None].expand(k, 2 * n)
    return f[:, :n].reshape(-1, d), y[:, :n].reshape(-1), f[:, n:].reshape(-1, d), y[:, n:].reshape(-1)


@pytest.fixture(scope="module")
def pooled_mnist(mnist_train):
    """Real data, cheaply: MNIST digits average-pooled to 7x7 = 49 features, 50 per class to
    fit on and 50 other images per class held out (some pooled pixels are constant)."""
    sub = D.balanced_subset(mnist_train, per_class=100, seed=0)
    f = F.avg_pool2d(sub.x, 4).flatten(1)
    first = torch.zeros(len(sub), dtype=torch.bool)
    for c in range(10):
        first[torch.nonzero(sub.y == c).flatten()[:50]] = True
    return f[first], sub.y[first], f[~first], sub.y[~first]


# --------------------------------------------------------------------------- build_head


def test_build_head_kinds_and_options():
    f, y, _, _ = shifted_clusters()
    assert H.build_head(TargetConfig(), f, y, 4) is None
    lin = H.build_head(CEConfig(head_prefit_steps=0), f, y, 4)
    assert isinstance(lin, LinearCEHead)
    seam = H.build_head(SeamConfig(head_prefit_steps=0, margin=0.05, likelihood_weight=0.1), f, y, 4)
    assert isinstance(seam, LGMLoss) and seam.covariance == "diagonal"
    assert seam.margin == 0.05 and seam.likelihood_weight == 0.1
    assert (seam.variances() == 1).all()
    ident = H.build_head(SeamConfig(head_prefit_steps=0, covariance="identity", normalise=False), f, y, 4)
    assert ident.log_var is None
    assert (ident.normaliser.shift == 0).all() and (ident.normaliser.scale == 1).all()


def test_forward_interface_and_shapes():
    f, y, _, _ = shifted_clusters()
    for cfg in (SeamConfig(head_prefit_steps=3), CEConfig(head_prefit_steps=3), SeamConfig(covariance="identity", head_prefit_steps=3)):
        head = H.build_head(cfg, f, y, 4)
        loss, logits = head(f[:10], y[:10])
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert logits.shape == (10, 4) and torch.allclose(head.logits(f[:10]), logits)
        loss.backward()
        assert all(p.grad is not None for p in head.parameters())


def test_means_start_at_the_given_features_centroids():
    """The means start at the class means of the (normalised) features given: the supernet's
    own starting features, not the full-precision model's."""
    f, y, _, _ = shifted_clusters()
    head = H.build_head(SeamConfig(head_prefit_steps=0), f, y, 4)
    z = (f.double() - f.double().mean(0)) / f.double().std(0)
    assert torch.allclose(head.means.double(), centroids(z, y), atol=1e-5)
    shrunk = H.build_head(SeamConfig(head_prefit_steps=0, normalise=False), 0.6 * f, y, 4)
    assert torch.allclose(shrunk.means, centroids(0.6 * f, y), atol=1e-6)
    lin = H.build_head(CEConfig(head_prefit_steps=0), f, y, 4)
    assert (lin.fc.weight == 0).all() and (lin.fc.bias == 0).all()


def test_normalisation_statistics_are_frozen():
    f, y, _, _ = shifted_clusters()
    head = H.build_head(SeamConfig(head_prefit_steps=0), f, y, 4)
    shift, scale = head.normaliser.shift.clone(), head.normaliser.scale.clone()
    assert torch.allclose(shift, f.mean(0), atol=1e-5) and torch.allclose(scale, f.std(0), rtol=1e-4)
    names = {n for n, _ in head.named_parameters()}
    assert names == {"means", "log_var"}  # the statistics are buffers, not parameters
    opt = torch.optim.Adam(head.parameters(), lr=0.1)
    for batch in (0.3 * f[:32], f[32:64] + 4):  # batches of other scale and shift
        loss, _ = head(batch, y[:32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(head.normaliser.shift, shift) and torch.equal(head.normaliser.scale, scale)


def test_shrinking_features_does_not_lower_the_loss():
    """At the pre-fitted head, features scaled towards the origin (as quantisation shrinks them)
    cost more, not less: the frozen normaliser sees the shrinkage."""
    f, y, _, _ = shifted_clusters()
    for cfg in (SeamConfig(), SeamConfig(covariance="identity"), CEConfig()):
        head = H.build_head(cfg, f, y, 4)
        with torch.no_grad():
            losses = [head(c * f, y)[0].item() for c in (0.5, 0.8, 0.95, 1.0)]
        assert losses == sorted(losses, reverse=True) and losses[0] > losses[-1] + 0.5, (cfg, losses)


def test_prefit_improves_accuracy_on_real_features(pooled_mnist):
    f, y, fv, yv = pooled_mnist
    before = H.head_report(H.build_head(SeamConfig(head_prefit_steps=0), f, y, 10), f, y, fv, yv)
    seam = H.head_report(H.build_head(SeamConfig(margin=0.1), f, y, 10), f, y, fv, yv)
    ce = H.head_report(H.build_head(CEConfig(), f, y, 10), f, y, fv, yv)
    assert seam["head_train_acc"] > before["head_train_acc"] + 10
    assert seam["head_val_acc"] > before["head_val_acc"] + 3
    # the acceptance criterion of the search head: >= 90% of the linear probe, held out
    assert seam["head_val_acc"] >= 0.9 * seam["probe_val_acc"]
    assert ce["head_val_acc"] >= 0.9 * ce["probe_val_acc"]
    assert 80 < seam["probe_val_acc"] < seam["probe_train_acc"] <= 100


def test_same_inputs_same_head():
    f, y, _, _ = shifted_clusters()
    for cfg in (SeamConfig(head_prefit_steps=20), CEConfig(head_prefit_steps=20)):
        torch.manual_seed(0)
        a = H.build_head(cfg, f, y, 4)
        torch.manual_seed(1)
        b = H.build_head(cfg, f, y, 4)
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_prefit_budget_is_the_config_s():
    f, y, _, _ = shifted_clusters()
    head = H.build_head(SeamConfig(head_prefit_steps=0), f, y, 4)
    assert len(H.prefit(head, f, y, 7)) == 7
    losses = H.prefit(H.build_head(CEConfig(head_prefit_steps=0), f, y, 4), f, y, 50)
    assert losses[-1] < 0.5 * losses[0]
    assert losses[0] == pytest.approx(math.log(4))  # zero weights: uniform prediction


def test_build_head_bad_input():
    f, y, _, _ = shifted_clusters()
    with pytest.raises(DataError, match=r"classes \[3\]"):
        H.build_head(SeamConfig(), f[y < 3], y[y < 3], 4)
    with pytest.raises(DataError, match="labels must lie"):
        H.build_head(SeamConfig(), f, y + 1, 4)
    with pytest.raises(DataError, match="shape"):
        H.build_head(SeamConfig(), f[:, :, None], y, 4)
    with pytest.raises(ConfigError, match="head must be"):
        H.build_head(type("C", (), {"head": "svm"})(), f, y, 4)
    with pytest.raises(ConfigError, match="head_prefit_steps"):
        H.prefit(H.build_head(CEConfig(head_prefit_steps=0), f, y, 4), f, y, -1)


# --------------------------------------------------------------------------- head_report


def test_head_report_keys_and_values():
    f, y, fv, yv = shifted_clusters()
    head = H.build_head(SeamConfig(), f, y, 4)
    r = H.head_report(head, f, y, fv, yv)
    assert set(r) == {"head_train_acc", "head_val_acc", "probe_train_acc", "probe_val_acc"}
    assert all(0 <= v <= 100 for v in r.values())
    with torch.no_grad():
        assert r["head_val_acc"] == pytest.approx(100 * (head.logits(fv).argmax(1) == yv).double().mean().item(), abs=0.01)
    none = H.head_report(None, f, y, fv, yv)
    assert none["head_train_acc"] is None and none["head_val_acc"] is None
    assert none["probe_val_acc"] == r["probe_val_acc"]  # the probe is deterministic
    no_val = H.head_report(head, f, y)
    assert no_val["head_val_acc"] is None and no_val["probe_val_acc"] is None
    assert no_val["head_train_acc"] == r["head_train_acc"]
    with pytest.raises(DataError, match="both"):
        H.head_report(head, f, y, fv, None)


def test_linear_probe_separates_separable_data():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(200, 5, generator=g)
    y = (f[:, 0] + 0.5 * f[:, 3] > 0).long()
    probe = H.linear_probe(1e-3 * f + 3, y)  # tiny scale, large offset: the probe z-scores
    assert H.accuracy(probe(1e-3 * f + 3), y) > 97
    assert H.accuracy(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0])) == 50.0
