"""CORE-MTL: the method library (dual streams, CKA, counterfactual swaps, grounding, probes,
baselines and one trainer)."""
