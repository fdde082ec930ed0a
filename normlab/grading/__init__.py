"""Grading: turning stored trajectories into value measurements. It reads the store and never
reruns an environment (`spec` declares what a task grades; checkpoints, scores, the rubric
judge and reports build on it)."""
