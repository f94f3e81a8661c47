import math

import pytest
import torch
import torch.nn.functional as F

from mpqlib import discriminability as D
from mpqlib.errors import ConfigError
from mpqlib.models import resnet20

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (tests/conftest.py)

# --------------------------------------------------------------------------- helpers


def clusters(centres: torch.Tensor, n: int = 100, std: float = 1.0, seed: int = 0):
    """n Gaussian samples N(c, std^2 I) around each row c of ``centres``; the same noise for the
    same seed, so changing ``std`` only rescales the spread."""
    g = torch.Generator().manual_seed(seed)
    k, d = centres.shape
    z = torch.randn(k, n, d, generator=g, dtype=torch.float64)
    f = (centres[:, None, :] + std * z).reshape(k * n, d)
    y = torch.arange(k).repeat_interleave(n)
    return f, y


def random_centres(k: int = 4, d: int = 8, scale: float = 5.0, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(k, d, generator=g, dtype=torch.float64)


# hand-made: centroids (1, 0) and (10, 2); distances to them 1, 1, 2, 2
F_HAND = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 4.0]])
Y_HAND = torch.tensor([0, 0, 1, 1])


# --------------------------------------------------------------------------- metrics, by hand


def test_centroids_hand_computed():
    mu = D.centroids(F_HAND, Y_HAND)
    assert torch.equal(mu, torch.tensor([[1.0, 0.0], [10.0, 2.0]]))
    # classes need not be 0..K-1: rows follow increasing label order
    mu = D.centroids(F_HAND, torch.tensor([7, 7, 3, 3]))
    assert torch.equal(mu, torch.tensor([[10.0, 2.0], [1.0, 0.0]]))


def test_metrics_hand_computed():
    assert D.compactness(F_HAND, Y_HAND) == pytest.approx(1.5)
    sep = D.separation(F_HAND, Y_HAND)
    assert sep["mean"] == pytest.approx(math.sqrt(85)) and sep["min"] == pytest.approx(math.sqrt(85))
    # overall mean (5.5, 1): tr S_B = 2*(4.5^2 + 1) * 2 = 85; tr S_W = 1 + 1 + 4 + 4 = 10
    assert D.fisher_ratio(F_HAND, Y_HAND) == pytest.approx(8.5)
    assert D.normalised_compactness(F_HAND, Y_HAND) == pytest.approx(1.5 / math.sqrt(85))


def test_logit_margin_hand_made():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0]])
    assert D.logit_margin(logits[:1], torch.tensor([0])) == pytest.approx(2.0)  # correct: positive
    assert D.logit_margin(logits[1:], torch.tensor([1])) == pytest.approx(-3.0)  # wrong: negative
    assert D.logit_margin(logits, torch.tensor([0, 1])) == pytest.approx(-0.5)
    assert D.logit_margin(logits, torch.tensor([2, 2])) == pytest.approx(((0 - 3) + (5 - 2)) / 2)


def test_summary_keys_and_values():
    logits = torch.tensor([[3.0, 1.0], [0.0, 2.0], [1.0, 0.0], [0.0, 4.0]])
    s = D.summary(F_HAND, Y_HAND, logits)
    assert set(s) == {"compactness", "separation_mean", "separation_min", "fisher_ratio", "normalised_compactness", "logit_margin"}
    assert s["fisher_ratio"] == pytest.approx(8.5) and s["logit_margin"] == pytest.approx((2 - 2 - 1 + 4) / 4)
    assert all(isinstance(v, float) for v in s.values())
    assert "logit_margin" not in D.summary(F_HAND, Y_HAND)


# --------------------------------------------------------------------------- metrics, synthetic clusters


def test_spread_grows_compactness_up_fisher_down():
    centres = random_centres()
    comp, fisher, norm = [], [], []
    for std in (0.2, 0.5, 1.0, 2.0):
        f, y = clusters(centres, std=std)
        comp.append(D.compactness(f, y))
        fisher.append(D.fisher_ratio(f, y))
        norm.append(D.normalised_compactness(f, y))
    assert comp == sorted(comp) and comp[-1] > 5 * comp[0]
    assert fisher == sorted(fisher, reverse=True) and fisher[0] > 20 * fisher[-1]
    assert norm == sorted(norm)
    # compactness of N(0, s^2 I) in d=8 is about s * sqrt(8)
    assert comp[2] == pytest.approx(math.sqrt(8), rel=0.1)


def test_centres_apart_separation_up():
    centres = random_centres()
    means, mins, fisher = [], [], []
    for scale in (0.5, 1.0, 2.0, 4.0):
        f, y = clusters(scale * centres, std=1.0)
        s = D.separation(f, y)
        means.append(s["mean"])
        mins.append(s["min"])
        fisher.append(D.fisher_ratio(f, y))
    assert means == sorted(means) and mins == sorted(mins) and fisher == sorted(fisher)
    assert means[-1] > 6 * means[0]


def test_separation_min_picks_closest_pair():
    centres = torch.zeros(4, 6, dtype=torch.float64)
    centres[1, 0] = 1.0  # classes 0 and 1: distance 1
    centres[2, 1] = 10.0
    centres[3, 2] = -10.0
    f, y = clusters(centres, n=200, std=0.1)
    mu = D.centroids(f, y)
    s = D.separation(f, y)
    assert s["min"] == pytest.approx((mu[0] - mu[1]).norm().item())
    assert s["min"] == pytest.approx(1.0, abs=0.05)
    pairs = [(mu[i] - mu[j]).norm().item() for i in range(4) for j in range(i + 1, 4)]
    assert s["mean"] == pytest.approx(sum(pairs) / 6)


def test_fisher_ratio_scale_and_shift_invariant_compactness_not():
    f, y = clusters(random_centres(), std=1.0)
    shift = torch.arange(8, dtype=torch.float64)
    assert D.fisher_ratio(3.7 * f, y) == pytest.approx(D.fisher_ratio(f, y), rel=1e-10)
    assert D.fisher_ratio(f + shift, y) == pytest.approx(D.fisher_ratio(f, y), rel=1e-10)
    assert D.normalised_compactness(3.7 * f, y) == pytest.approx(D.normalised_compactness(f, y), rel=1e-10)
    assert D.compactness(3.7 * f, y) == pytest.approx(3.7 * D.compactness(f, y), rel=1e-10)


def test_fisher_ratio_matches_scatter_matrices():
    f, y = clusters(random_centres(k=3, d=5), n=30, std=1.5)
    mu, mu_k = f.mean(0), D.centroids(f, y)
    s_b = sum(30 * torch.outer(m - mu, m - mu) for m in mu_k)
    s_w = sum(torch.outer(f[i] - mu_k[y[i]], f[i] - mu_k[y[i]]) for i in range(len(f)))
    assert D.fisher_ratio(f, y) == pytest.approx((torch.trace(s_b) / torch.trace(s_w)).item(), rel=1e-10)


def test_metric_input_checks():
    with pytest.raises(ValueError, match="two classes"):
        D.separation(F_HAND, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        D.compactness(F_HAND, Y_HAND[:3])
    with pytest.raises(ValueError, match="integers"):
        D.compactness(F_HAND, Y_HAND.float())
    assert D.fisher_ratio(torch.tensor([[0.0], [0.0], [1.0]]), torch.tensor([0, 0, 1])) == math.inf


# --------------------------------------------------------------------------- L-GM loss


def lgm_case(seed: int = 0, n: int = 6, k: int = 3, d: int = 4):
    g = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(k, d, generator=g, dtype=torch.float64)
    feats = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (n,), generator=g)
    return means, feats, labels


def test_lgm_loss_and_logits_hand_computed():
    means, g, y = lgm_case()
    crit = D.LGMLoss(3, 4, margin=0.3, likelihood_weight=0.1, means=means)
    loss, logits = crit(g, y)
    d = 0.5 * ((g[:, None, :] - means[None]) ** 2).sum(-1)
    h = -d.clone()
    h[torch.arange(len(y)), y] *= 1.3
    expected = F.cross_entropy(h, y) + 0.1 * d[torch.arange(len(y)), y].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    assert torch.allclose(logits, -d) and torch.allclose(crit.logits(g), -d)


def test_lgm_likelihood_gradient_is_g_minus_mu_over_n():
    means, g, y = lgm_case()
    crit = D.LGMLoss(3, 4, means=means)
    g.requires_grad_(True)
    crit.likelihood(g, y).backward()
    expected = (g.detach() - means[y]) / len(y)
    assert torch.allclose(g.grad, expected, atol=1e-12)
    # and the means are pulled toward their samples
    exp_mu = torch.zeros_like(means).index_add_(0, y, -(g.detach() - means[y]) / len(y))
    assert torch.allclose(crit.means.grad, exp_mu, atol=1e-12)


def test_lgm_full_gradient_matches_hand_derivation():
    # d loss / d g_i = (1/N) [ sum_k (p_ik - [k = y_i]) * -(1 + m [k = y_i]) (g_i - mu_k) + lam (g_i - mu_{y_i}) ]
    means, g, y = lgm_case(seed=3)
    m, lam, n = 0.2, 0.05, len(y)
    crit = D.LGMLoss(3, 4, margin=m, likelihood_weight=lam, means=means)
    g.requires_grad_(True)
    crit(g, y)[0].backward()
    with torch.no_grad():
        onehot = F.one_hot(y, 3).double()
        diff = g[:, None, :] - means[None]  # (N, K, D)
        h = -(1 + m * onehot) * 0.5 * (diff**2).sum(-1)
        coef = (h.softmax(1) - onehot) * -(1 + m * onehot)  # (N, K)
        expected = ((coef[:, :, None] * diff).sum(1) + lam * (g - means[y])) / n
    assert torch.allclose(g.grad, expected, atol=1e-10)


def test_lgm_descent_step_moves_feature_toward_its_mean():
    means = torch.tensor([[0.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    crit = D.LGMLoss(2, 2, means=means)
    g = torch.tensor([[0.0, 1.0], [3.0, -1.5]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1])
    crit(g, y)[0].backward()
    before = (g - means[y]).norm(dim=1)
    after = (g - 0.5 * g.grad - means[y]).norm(dim=1)
    assert (after < before).all()


def test_lgm_margin_increases_loss():
    means, g, y = lgm_case()
    losses = [D.LGMLoss(3, 4, margin=m, means=means)(g, y)[0].item() for m in (0.0, 0.1, 0.3)]
    assert losses[0] < losses[1] < losses[2]
    # the margin-free logits do not depend on the margin
    a = D.LGMLoss(3, 4, margin=0.0, means=means)(g, y)[1]
    b = D.LGMLoss(3, 4, margin=0.3, means=means)(g, y)[1]
    assert torch.equal(a, b)


def test_lgm_loss_smallest_on_the_means():
    means = 3 * torch.eye(4, 6)
    crit = D.LGMLoss(4, 6, means=means)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    on = crit(means[y], y)[0].item()
    off = crit(means[y] + 0.5 * torch.randn(6, 6, generator=torch.Generator().manual_seed(0)), y)[0].item()
    swapped = crit(means[(y + 1) % 4], y)[0].item()
    assert on < off < swapped
    assert crit.likelihood(means[y], y).item() == 0.0


def test_lgm_learns_and_validates():
    crit = D.LGMLoss(5, 8)
    assert crit.means.shape == (5, 8) and crit.means.requires_grad
    assert crit.means.abs().max() < 0.1  # small init
    with pytest.raises(ValueError, match="margin"):
        D.LGMLoss(5, 8, margin=-0.1)
    with pytest.raises(ValueError, match="likelihood_weight"):
        D.LGMLoss(5, 8, likelihood_weight=-1)
    with pytest.raises(ValueError, match=r"\(batch, 8\)"):
        crit(torch.randn(3, 7), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="means"):
        D.LGMLoss(5, 8, means=torch.zeros(5, 7))


def test_linear_ce_head_same_interface():
    torch.manual_seed(0)
    h = D.LinearCEHead(3, 4)
    g, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    loss, logits = h(g, y)
    assert torch.allclose(logits, h.fc(g)) and torch.allclose(h.logits(g), logits)
    assert loss.item() == pytest.approx(F.cross_entropy(h.fc(g), y).item())
    loss.backward()
    assert h.fc.weight.grad is not None
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        h(torch.randn(5, 3), y)


# --------------------------------------------------------------------------- features()


def test_features_resnet20_matches_manual_pool():
    torch.manual_seed(0)
    model = resnet20()
    model.train()
    x = torch.randn(6, 1, 28, 28)
    f, logits = D.features(model, x, batch_size=4, return_logits=True)
    assert f.shape == (6, 64) and logits.shape == (6, 10)
    assert len(model.fc._forward_pre_hooks) == 0
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        t = model.relu(model.bn1(model.conv1(x)))
        manual = torch.flatten(model.avgpool(model.layer3(model.layer2(model.layer1(t)))), 1)
        assert torch.allclose(f, manual, atol=1e-5)
        assert torch.allclose(model.fc(f), logits, atol=1e-5)
        assert torch.allclose(model(x), logits, atol=1e-5)
    assert torch.allclose(D.features(model, x), f, atol=1e-5)  # batching does not matter


def test_features_hook_removed_on_error():
    model = resnet20()
    with pytest.raises(RuntimeError):
        D.features(model, torch.randn(2, 3, 28, 28))  # 3 channels into a 1-channel stem
    assert len(model.fc._forward_pre_hooks) == 0


@pytest.mark.parametrize("arch,dim", [("resnet18", 512), ("mobilenet_v2", 1280)])
def test_features_torchvision(arch, dim):
    from mpqlib.models import build, head

    torch.manual_seed(0)
    model = build(arch, num_classes=5, in_channels=3)
    x = torch.randn(2, 3, 32, 32)
    f, logits = D.features(model, x, return_logits=True)
    _, fc = head(model)
    assert f.shape == (2, dim)
    assert torch.allclose(fc(f), logits, atol=1e-4)
    assert len(fc._forward_pre_hooks) == 0


# --------------------------------------------------------------------------- L-GM head on frozen features




def diag_case(seed: int = 0, n: int = 8, k: int = 3, d: int = 5):
    means, g, y = lgm_case(seed, n, k, d)
    log_var = 0.5 * torch.randn(k, d, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64)
    return means, log_var, g, y


def test_diagonal_lgm_hand_computed():
    means, log_var, g, y = diag_case()
    crit = D.LGMLoss(3, 5, margin=0.3, likelihood_weight=0.1, means=means, covariance="diagonal", log_var=log_var)
    var = log_var.exp()
    d = 0.5 * ((g[:, None, :] - means[None]) ** 2 / var[None]).sum(-1)
    assert torch.allclose(crit.distances(g), d)
    half_logdet = 0.5 * log_var.sum(1)
    h = -d.clone()
    h[torch.arange(len(y)), y] *= 1.3
    expected = F.cross_entropy(h - half_logdet, y) + 0.1 * d[torch.arange(len(y)), y].mean()
    loss, logits = crit(g, y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    assert torch.allclose(logits, -d - half_logdet) and torch.allclose(crit.logits(g), logits)
    assert crit.likelihood(g, y).item() == pytest.approx(d[torch.arange(len(y)), y].mean().item(), rel=1e-10)


def test_margin_zero_is_the_plain_gaussian_mixture_posterior():
    means, log_var, g, y = diag_case(seed=2)
    crit = D.LGMLoss(3, 5, margin=0.0, likelihood_weight=0.0, means=means, covariance="diagonal", log_var=log_var)
    normal = torch.distributions.Normal(means[None], (0.5 * log_var).exp()[None])
    log_density = normal.log_prob(g[:, None, :]).sum(-1)  # log N(g; mu_k, Sigma_k), (N, K)
    loss, logits = crit(g, y)
    assert torch.allclose(logits.log_softmax(1), log_density.log_softmax(1), atol=1e-10)
    assert loss.item() == pytest.approx(F.cross_entropy(log_density, y).item(), rel=1e-10)


def test_diagonal_covariance_positive():
    crit = D.LGMLoss(3, 4, covariance="diagonal", log_var=torch.full((3, 4), -60.0))
    assert (crit.variances() > 0).all() and torch.isfinite(crit.log_det()).all()
    crit.log_var.data.fill_(40.0)
    assert (crit.variances() > 0).all()
    # and it learns: gradient steps on a wide class make its variance grow, staying positive
    crit = D.LGMLoss(2, 1, 0.0, 0.0, means=torch.tensor([[-1.0], [1.0]]), covariance="diagonal")
    g, y = torch.tensor([[-4.0], [2.0], [-1.0], [1.0]]), torch.tensor([0, 0, 0, 1])
    opt = torch.optim.SGD(crit.parameters(), lr=0.1)
    for _ in range(30):
        opt.zero_grad()
        crit(g, y)[0].backward()
        opt.step()
    assert (crit.variances() > 0).all() and crit.variances()[0, 0] > 1


def test_normalised_head_equals_head_on_normalised_features():
    means, log_var, g, y = diag_case(seed=4)
    norm = D.Normaliser(5, shift=torch.arange(5.0), scale=torch.linspace(0.5, 2, 5))
    a = D.LGMLoss(3, 5, 0.1, 0.05, means=means, covariance="diagonal", log_var=log_var, normaliser=norm.double())
    b = D.LGMLoss(3, 5, 0.1, 0.05, means=means, covariance="diagonal", log_var=log_var)
    z = (g - torch.arange(5.0, dtype=torch.float64)) / torch.linspace(0.5, 2, 5, dtype=torch.float64)
    assert torch.allclose(a(g, y)[0], b(z, y)[0]) and torch.allclose(a(g, y)[1], b(z, y)[1])
    lin = D.LinearCEHead(3, 5, normaliser=norm)
    assert torch.allclose(lin.logits(g.float()), lin.fc(z.float()), atol=1e-5)


def test_normaliser_fit_and_frozen():
    f, _ = clusters(random_centres(), std=2.0)
    norm = D.Normaliser.fit(f)
    z = norm(f)
    assert torch.allclose(z.mean(0), torch.zeros(8, dtype=z.dtype), atol=1e-6)
    assert torch.allclose(z.std(0), torch.ones(8, dtype=z.dtype), atol=1e-6)
    assert list(norm.parameters()) == [] and set(dict(norm.named_buffers())) == {"shift", "scale"}
    before = norm.scale.clone()
    norm(0.1 * f)  # other data does not move the statistics
    assert torch.equal(norm.scale, before)
    assert torch.equal(D.Normaliser.fit(f, normalise=False)(f), f)
    # a constant dimension gets a floor, not a division by ~0
    f[:, 3] = 1.0
    assert D.Normaliser.fit(f).scale[3] > 0.005 * D.Normaliser.fit(f).scale.mean()
    with pytest.raises(ConfigError, match="positive"):
        D.Normaliser(2, scale=torch.tensor([1.0, 0.0]))
    with pytest.raises(ConfigError, match="N >= 2"):
        D.Normaliser.fit(f[:1])


def test_shrinkage_is_not_rewarded_once_the_head_adapts():
    """With a learned diagonal covariance and a likelihood term without the log-determinant,
    the best loss a head can reach is the same for features shrunk (or shifted) by any
    per-dimension affine map: the mapped head (means mapped, variances scaled) gives exactly
    the same loss. So a search cannot gain by shrinking features instead of separating them."""
    means, log_var, g, y = diag_case(seed=5)
    crit = D.LGMLoss(3, 5, 0.1, 0.05, means=means, covariance="diagonal", log_var=log_var)
    c, b = 0.4, torch.linspace(-1, 1, 5, dtype=torch.float64)
    mapped = D.LGMLoss(3, 5, 0.1, 0.05, means=c * means + b, covariance="diagonal", log_var=log_var + 2 * math.log(c))
    assert mapped(c * g + b, y)[0].item() == pytest.approx(crit(g, y)[0].item(), rel=1e-10)
    # identity covariance has no such map: with the means following, the likelihood term alone
    # drops by c^2, a reward for shrinking
    ident, shrunk = D.LGMLoss(3, 5, 0.0, 1.0, means=means), D.LGMLoss(3, 5, 0.0, 1.0, means=c * means)
    assert shrunk.likelihood(c * g, y).item() == pytest.approx(c**2 * ident.likelihood(g, y).item(), rel=1e-10)


def test_lgm_head_options_validated():
    with pytest.raises(ConfigError, match="covariance"):
        D.LGMLoss(3, 4, covariance="full")
    with pytest.raises(ConfigError, match="log_var is only"):
        D.LGMLoss(3, 4, log_var=torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="log_var must have shape"):
        D.LGMLoss(3, 4, covariance="diagonal", log_var=torch.zeros(3, 5))
    with pytest.raises(ConfigError, match="normaliser has dim"):
        D.LGMLoss(3, 4, normaliser=D.Normaliser(5))
    with pytest.raises(ConfigError, match="normaliser has dim"):
        D.LinearCEHead(3, 4, normaliser=D.Normaliser(5))
    crit = D.LGMLoss(3, 4, covariance="diagonal")
    assert torch.equal(crit.variances(), torch.ones(3, 4)) and torch.equal(crit.log_det(), torch.zeros(3))
    assert "covariance='diagonal'" in repr(crit)
