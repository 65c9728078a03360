"""Training: one path from a config file to a trained model in a run directory.

``model_configs`` holds every model's config dataclass (TensorFlow-free, so a bad config fails
before TensorFlow loads), each naming its recipe (``RECIPE``); ``recipes`` prepares a model's
data, builds the model and hands it to its evaluation protocol (``evaluation.protocols``);
``harness`` runs ``model.fit`` with checkpoints, resume, early stopping and logs (or, for a
``SolverRecipe`` such as Partial Dual, the model's own solver with the same run directory,
checkpoints and resume) and records the run's protocol in ``metrics.json``; a run ends by
writing its ``serving_parts`` (what its serving head needs: ids, vectors, the item embedder or
pair scorer as a SavedModel) into ``<run_dir>/serving``, the one thing export reads.
``newcomers`` fits without whole customers and measures how fast each is known from their
survey and first votes (Partial Dual's fold-in, StyNet's customer tower).

May import: data, layers, losses, metrics, models, tasks, evaluation. Never imports export or
serving.
"""
