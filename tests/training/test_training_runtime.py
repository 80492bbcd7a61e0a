"""Runtime: device choice, torch threads and deterministic algorithms, each restored after a block."""

import os

import pytest
import torch

from masterkey.training.runtime import deterministic, resolve_device, set_threads, threads

pytestmark = pytest.mark.usefixtures("few_threads")  # restores torch's threads after each test


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda:0' asked for but CUDA is not available"):
            resolve_device("cuda:0")


def test_set_threads_and_the_threads_block():
    set_threads(3)
    assert torch.get_num_threads() == 3
    set_threads(None)
    assert torch.get_num_threads() == 3
    set_threads(0)
    assert torch.get_num_threads() == 1
    set_threads(2)
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), threads(3):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2
    with threads(None):
        assert torch.get_num_threads() == 2


def test_deterministic_block_is_restored(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        with deterministic():
            pass
        assert torch.are_deterministic_algorithms_enabled()  # an inner block keeps the outer setting
    assert not torch.are_deterministic_algorithms_enabled()
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with pytest.raises(ValueError), deterministic():
        raise ValueError("inside")
    assert not torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a user's setting is kept
