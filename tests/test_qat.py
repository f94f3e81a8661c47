"""QAT on the committed small model with tiny real data, in memory and as datasets."""

from pathlib import Path

import pytest
import torch

from mpqlib import data as D
from mpqlib.config import QATConfig
from mpqlib.errors import ConfigError, DataError
from mpqlib.policy import Policy
from mpqlib.qat import QATConfig as QATConfigFromQat, qat
from mpqlib.train import evaluate, load_checkpoint

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "resnet8-fmnist.pt"


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(CHECKPOINT)[0].eval()


@pytest.fixture(scope="module")
def train():
    return D.search_data("fmnist:20", seed=0)


@pytest.fixture(scope="module")
def test_set():
    t = D.load("fmnist", "test")
    return t.subset(torch.arange(300), name="fmnist-test-300")


FAST = QATConfig(epochs=1, batch_size=50)


def test_qat_config_lives_in_config(train):
    assert QATConfigFromQat is QATConfig
    with pytest.raises(ConfigError, match="epochs"):
        QATConfig(epochs=0)


def test_w4a4_qat_keeps_most_accuracy_and_is_deterministic(model, train, test_set):
    policy = Policy.uniform(model, 4, 4)
    fp = evaluate(model, test_set)
    q1, rec1 = qat(model, policy, train, test_set, FAST, progress=False)
    _, rec2 = qat(model, policy, train, test_set, FAST, progress=False)
    assert rec1["top1"] == rec2["top1"]
    assert rec1["top1"] > fp - 10, (rec1["top1"], fp)
    assert rec1["images"] == 200 and rec1["config"] == FAST.to_dict() and rec1["config_type"] == "QATConfig"
    assert evaluate(q1, test_set) == rec1["top1"]


def test_datasets_and_loaders_give_the_same_run_as_images(model, train, test_set):
    policy = Policy.uniform(model, 3, 3)
    _, base = qat(model, policy, train, test_set, FAST, progress=False)
    as_dataset = torch.utils.data.Subset(train, range(len(train)))
    _, rec = qat(model, policy, as_dataset, D.as_loader(test_set, 100, shuffle=False), FAST, progress=False)
    assert rec["top1"] == base["top1"] and rec["images"] == base["images"]


def test_train_images_takes_a_balanced_subset_of_any_dataset(model, train, test_set):
    policy = Policy.uniform(model, 4, 4)
    subset = torch.utils.data.Subset(train, range(len(train)))
    _, rec = qat(model, policy, subset, test_set, FAST.replace(train_images=100), progress=False)
    assert rec["images"] == 100


def test_images_of_the_wrong_shape_name_input_size(model, train, test_set):
    big = D.Images("big", torch.zeros(20, 3, 32, 32), torch.arange(20) % 10, train.classes)
    with pytest.raises(DataError, match="--input-size 3,32,32"):
        qat(model, Policy.uniform(model, 4, 4), big, test_set, FAST, input_size=(1, 1, 28, 28), progress=False)
    with pytest.raises(DataError, match="--input-size 3,32,32"):
        qat(model, Policy.uniform(model, 4, 4), train, big, FAST, input_size=(1, 1, 28, 28), progress=False)


def test_a_model_that_cannot_take_the_images_names_input_size(model, test_set):
    rgb = D.Images("rgb", torch.zeros(20, 3, 32, 32), torch.arange(20) % 10, test_set.classes)
    with pytest.raises(DataError, match="cannot run on rgb's images of shape 3x32x32.*--input-size"):
        qat(model, Policy.uniform(model, 4, 4), rgb, rgb, FAST, progress=False)
