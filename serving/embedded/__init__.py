"""The embedded default: the platform on one machine (local stack, processes, traffic, demo, CT loop, benchmark).

It runs the controller (serving/rollout), the model service and the retraining triggers; none of them imports it.
"""
