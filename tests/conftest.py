import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def fmnist_test():
    from mpqlib import data as D

    return D.load("fmnist", "test")


@pytest.fixture(scope="session")
def mnist_train():
    from mpqlib import data as D

    return D.load("mnist", "train")
