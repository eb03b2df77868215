"""Fixtures for the Tracr tests: clean/corrupted input pairs on a compiled program."""

import random

import pytest
import torch

from mi_helpers.tracr import load_tracr
from mi_helpers.tracr.methods import output_metric


def tracr_pair(name, n=32, seed=0):
    """A model, ``n`` random clean and corrupted inputs of length 5, and the output metric."""
    model = load_tracr(name)
    inputs = model.inputs(5)
    rng = random.Random(seed)
    clean, corrupted = model.encode(rng.sample(inputs, n)), model.encode(rng.sample(inputs, n))
    with torch.no_grad():
        metric = output_metric(model.model(clean), model.model(corrupted))
    return model, clean, corrupted, metric


@pytest.fixture(scope="session")
def make_tracr_pair():
    """:func:`tracr_pair`, for tests (test modules cannot import a conftest)."""
    return tracr_pair
