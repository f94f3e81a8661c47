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


@pytest.fixture
def one_thread():
    """Small tensors: one thread is faster than two, much faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
