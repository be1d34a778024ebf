"""Canary rollout controller: step a canary's traffic weight up while live metrics say it is healthy.

One analysis (spec.py, analyse.py) and one loop (controller.py) drive two edges: a local weighted router
in front of `bentoml serve` processes, or a Gateway API HTTPRoute on a cluster.
"""
