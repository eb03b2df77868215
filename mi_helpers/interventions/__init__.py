"""Interventions on directions: ablate a direction, steer along it, measure the effect.

:mod:`.directions` holds the context managers (``ablate_direction``, ``steer``,
``steer_direction``) and the measurements built on them (``causal_effect`` against
random directions, ``next_token_shift``).
"""

from .directions import ablate_direction, causal_effect, next_token_shift, steer, steer_direction

__all__ = ["ablate_direction", "steer", "steer_direction", "causal_effect", "next_token_shift"]
