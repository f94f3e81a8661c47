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


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """The smoke study, every part, run once per test session on one worker and shared by the
    slow tests that read it (worker scheduling, chapters, objections): ``{cache_dir, results_dir}``
    overrides of the smoke profile. It starts from a copy of the repository's ``cache/smoke`` where
    a smoke book was built before (CI builds it just before the slow tier), so only the steps that
    cache lacks are computed; the tests never write to ``cache/smoke`` itself."""
    import shutil
    from pathlib import Path

    from mpqlib.study import run

    root = Path(__file__).resolve().parents[1]
    d = tmp_path_factory.mktemp("smoke-study")
    over = {"cache_dir": str(d / "cache"), "results_dir": str(d / "results")}
    if (root / "cache" / "smoke").is_dir():
        shutil.copytree(root / "cache" / "smoke", over["cache_dir"], ignore=shutil.ignore_patterns("results"))
    run("smoke", over, log=None)
    return over
