"""Project tools: the notebook runner (``python -m mi_helpers run``) and README markers."""
