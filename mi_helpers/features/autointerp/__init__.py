"""Automatic interpretation: explain what a unit fires on, then score the explanation.

Bills et al. (2023, "Language models can explain neurons in language models") turn a
unit (a neuron or an SAE latent) into a sentence and check the sentence in two steps:

1. **Explain.** Show an explainer the unit's *top-activating contexts* (token strings
   with the unit's activation at each token, :class:`ActivationContext`) and ask for a
   short explanation (:class:`Explanation`). :class:`TokenExplainer` does this offline
   by counting which tokens are over-represented where the unit fires;
   :class:`ChatExplainer` asks any OpenAI-compatible chat model.
2. **Score by simulation.** A *simulator* sees only the explanation and a context's
   tokens, and predicts the activation at every token (:class:`TokenSimulator`: 1 on
   the tokens the explanation names, else 0). The **simulation score** is the Pearson
   correlation between predicted and true activations over all tokens of top *and*
   random contexts (:func:`simulation_score`): 1 means the explanation predicts the
   unit perfectly (up to scale), 0 means it predicts nothing. Random contexts matter:
   on top contexts alone, "fires on everything" would look good.

A second check, the **detection score** (:func:`detection_score`), asks a coarser
question: from the explanation alone, can we tell contexts where the unit fires from
contexts where it does not? It is the balanced accuracy of "the simulator predicts some
activation in this context" against the truth, so 0.5 is chance whatever the class sizes.

Read both against a baseline: a wrong explanation scores about 0 on simulation and 0.5
on detection. A high score says the explanation is *predictive*, not that it is the
mechanism: a unit that fires on " Mary" because of the previous token is still well
explained by 'fires on " Mary"' if the two always co-occur in the data.

A token list is one context's tokens in order (the ``pos`` axis); activations are the
unit's value at each of them.
"""

from .chat import ChatExplainer
from .contexts import ActivationContext, Explainer, ExplainerError, Explanation, Simulator
from .scoring import (TokenSimulator, detection_score, pearson, quoted_tokens, score_explanation,
                      simulation_score)
from .token_explainer import TokenExplainer

__all__ = [
    "ActivationContext", "Explanation", "Explainer", "Simulator", "ExplainerError",
    "TokenExplainer", "ChatExplainer", "TokenSimulator", "quoted_tokens", "pearson",
    "simulation_score", "detection_score", "score_explanation",
]
