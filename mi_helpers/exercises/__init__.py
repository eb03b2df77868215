"""Exercises for learners: a check per exercise, and the exercise build of the notebooks.

The notebooks contain exercise regions (see :mod:`.regions` for the markers): a task
with ratings and hints, a cell holding the solution and its stub, and a check call. The
committed notebooks are the solution build; ``python -m mi_helpers build-exercises``
writes the exercise build to ``build/exercises/`` (:mod:`.build`).

A check, e.g. ``check_induction_score(induction_score)``, runs the learner's function
and a reference on fresh inputs, edge cases included, and fails with a message in the
learner's terms: the case, the expected and returned shape or value, a known mistake it
recognises, and a hint (:mod:`.checking`, :mod:`.checks`).

This package is ``mi_helpers.exercises``, not ``mi_helpers.checks``:
:mod:`mi_helpers.core.checks` already means *input validation* (one word, one meaning
across the package).
"""

from . import checks
from .build import build_exercises
from .checking import Case, ExerciseFailed, Mistake, check_function
from .checks import *  # every check_<skill>
from .regions import Exercise, ExerciseFormatError, exercises_in, stub_source

__all__ = ["ExerciseFailed", "Case", "Mistake", "check_function", "Exercise",
           "ExerciseFormatError", "exercises_in", "stub_source", "build_exercises"]
__all__ += checks.__all__
