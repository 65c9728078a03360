"""Serving (installed as ``tfrec_fashion_serving``): a gRPC server speaking TensorFlow Serving's
API over the export base, its client, and the docker compose file for the real
``tensorflow/serving`` image.

Modules, downstream first:

    contract.py       the serving contract written once, one head per model family
                      (RETRIEVAL: recommend / score / user_query / embed_item /
                      recommend_new_customer; COMPATIBILITY:
                      complete_pair / score_pairs, and PSA-Net's complete_pair_new_customer /
                      score_pairs_new_customer): signatures (inputs, dtypes, shapes,
                      defaults, padding), warm-up inputs, assets.extra file names, and
                      ``differences`` to hold a SavedModel to it (export, client, toy share it)
    limits.py         per-request bounds and their flags, chunked running, the run gate
    model_config.py   models.config parsing, base path resolution, version discovery and policies
    servable.py       one loaded version: SignatureDefs, running a signature, the optional
                      approximate index (``ann.py``) behind ``recommend_approximate``
    model_manager.py  the background poller: load + warm up, swap, unload; version states
    errors.py         ServingError and TF Serving's status codes (gRPC, HTTP, model status)
    predict.py        Predict validation and running, shared by gRPC, REST and warm-up
    service.py        GetModelMetadata, GetModelStatus, Classify/Regress refusals
    server.py         the gRPC server (``start_server``, ``main``), health checking
    rest.py           TF Serving's REST API
    ui.py, ui/        the browse page on the REST port (``/ui/``: static HTML, JavaScript and
                      CSS, shipped as package data) and its JSON API (``/ui/api/``): served
                      models, their catalogue, thumbnails and attention maps
    client.py         a client on the official stubs (``recommend``, ``main``)
    ann.py            the optional ScaNN index beside a SavedModel (``AnnIndex``), pybind only
    testing.py        a tiny contract-following SavedModel for tests and benchmarks, and
                      ``answers_in_fresh_process`` (any head's signatures, TensorFlow alone)
    docker-compose.yml  the stock tensorflow/serving image over the same export base
    batching.config   its BatchingParameters (2-core CPU), with the batching caveats

May import: tensorflow, tensorflow_serving (the API protos), grpc, grpc_health, numpy. Never
imports ``tfrec_fashion``: if a SavedModel needs project code to load, the export is wrong.
"""
