"""Export (installed as ``tfrec_fashion_export``): trained models -> versioned SavedModels.

Writes ``<base>/<model>/<version>/`` atomically (temporary directory, then rename), with named
signatures, a retrieval index inside the SavedModel, warm-up requests and a ``models.config``
for TensorFlow Serving. A SavedModel written here must load without any project code.

May import: tfrec_fashion, tensorflow, tensorflow_recommenders, tensorflow_serving.
"""
