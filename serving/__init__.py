"""Serving (installed as ``tfrec_fashion_serving``): a gRPC server speaking TensorFlow Serving's
API over the export base, its client, and the docker compose file for the real
``tensorflow/serving`` image.

May import: tensorflow, tensorflow_serving (the API protos), grpc. Never imports ``tfrec_fashion``:
if a SavedModel needs project code to load, the export is wrong.
"""
