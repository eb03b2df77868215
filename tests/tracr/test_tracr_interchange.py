"""Interchange interventions on Tracr's variable subspaces reach IIA 1; random ones do not."""

import pytest

from mi_helpers.tracr import load_tracr
from mi_helpers.tracr.interchange import (informative_pairs, interchange_accuracy, random_basis,
                                          variable_basis)


@pytest.fixture(scope="module")
def sort():
    return load_tracr("sort")


@pytest.mark.parametrize("variable", ["target_pos", "unique_key", "tokens"])
def test_variable_subspaces_reach_iia_one(sort, variable):
    pairs = informative_pairs(sort, variable, 40)
    assert len(pairs) == 40
    assert interchange_accuracy(sort, variable, pairs).accuracy == 1.0
    random_iia = interchange_accuracy(sort, variable, pairs, random_basis(
        sort.model.cfg.d_model, len(sort.variables[variable])), subspace="random").accuracy
    assert random_iia < 0.5


def test_pairs_differ_in_the_variable(sort):
    for base, source in informative_pairs(sort, "target_pos", 10, seed=3):
        assert sort.variable_values([base], "target_pos") != sort.variable_values(
            [source], "target_pos")


def test_a_constant_variable_has_no_informative_pairs():
    reverse = load_tracr("reverse")
    assert informative_pairs(reverse, "length", 10) == []  # every longest input has length 5
    assert interchange_accuracy(reverse, "length", []).n_pairs == 0


def test_unknown_variable(sort):
    with pytest.raises(KeyError, match="no variable 'nope'"):
        variable_basis(sort, "nope")
