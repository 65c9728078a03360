"""Training: one path from a config file to a trained model in a run directory.

``config`` parses YAML into typed dataclasses; ``recipes`` maps a model name onto its data,
model and evaluation builders; ``harness`` runs ``model.fit`` with checkpoints, resume,
early stopping and logs (or, for a ``SolverRecipe`` such as Partial Dual, the model's own
solver with the same run directory, checkpoints and resume).

May import: data, layers, losses, metrics, models. Never imports export or serving.
"""
