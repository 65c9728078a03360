"""Fixtures for the serving tests: tiny contract-following SavedModels, servers over them, and the
same SavedModels loaded in-process as the reference a server's answers must equal.

Nothing here imports ``tfrec_fashion``: the serving side sees SavedModels and TensorFlow only.
"""

import os
import shutil

import pytest
import tensorflow as tf
from tfrec_fashion_serving import testing
from tfrec_fashion_serving.server import start_server

POLL_SECONDS = 0.2


@pytest.fixture(scope="session")
def saved_versions(tmp_path_factory):
    """Two saved toy models (different random catalogues), saved once per session and copied
    into each test's export base: ``{seed: (catalogue, path)}``."""
    root = tmp_path_factory.mktemp("toy_models")
    versions = {}
    for seed in (0, 1):
        catalogue = testing.ToyCatalogue.random(seed=seed)
        path = testing.write_version(testing.ToyRecommender(catalogue), str(root / "toy"),
                                     version=seed + 1)
        versions[seed] = (catalogue, path)
    return versions


@pytest.fixture(scope="session")
def reference(saved_versions):
    """``reference(seed)``: that SavedModel loaded in-process (the answers a server must give)."""
    loaded = {seed: tf.saved_model.load(path) for seed, (_, path) in saved_versions.items()}
    return loaded.__getitem__


class ExportBase:
    """An export base in a temporary directory: ``models.config`` and versions copied in."""

    def __init__(self, root, saved_versions):
        self.root = str(root)
        self._saved = saved_versions

    def add(self, model: str, version: int, seed: int = 0, ann: bool = False) -> str:
        """Writes ``<root>/<model>/<version>`` atomically (a ``.tmp-*`` copy, then a rename)."""
        catalogue, path = self._saved[seed]
        return testing.write_version(path, os.path.join(self.root, model), version,
                                     catalogue=catalogue if ann else None)

    def remove(self, model: str, version: int) -> None:
        shutil.rmtree(os.path.join(self.root, model, str(version)))

    def config(self, models: dict) -> str:
        return testing.write_models_config(self.root, models)


@pytest.fixture
def export_base(tmp_path, saved_versions):
    return ExportBase(tmp_path / "exports", saved_versions)


@pytest.fixture
def serve():
    """``serve(config_file, **options)``: a started server, stopped after the test.

    As ``start_server``, it listens once every configured model has a version; a test that
    exports versions after starting passes ``wait_for_models=False``."""
    servers = []

    def start(config_file, **options):
        options.setdefault("port", 0)
        options.setdefault("poll_seconds", POLL_SECONDS)
        options.setdefault("startup_timeout", 60)  # a test that forgot to export fails
        server = start_server(config_file, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0)


SHARED_MODEL_CONFIG = ('model_version_policy { all {} } '
                       'version_labels { key: "stable" value: 1 } '
                       'version_labels { key: "canary" value: 2 }')


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory, saved_versions):
    """One server (gRPC and REST) for the read-only tests: model "toy" with version 1 (seed 0)
    and version 2 (seed 1), labels stable -> 1 and canary -> 2."""
    base = ExportBase(tmp_path_factory.mktemp("shared") / "exports", saved_versions)
    base.add("toy", 1, seed=0)
    base.add("toy", 2, seed=1)
    server = start_server(base.config({"toy": SHARED_MODEL_CONFIG}), port=0, rest_port=0,
                          poll_seconds=POLL_SECONDS)
    server.wait_until_available("toy", timeout=60, version=1)
    server.wait_until_available("toy", timeout=60, version=2)
    yield server
    server.stop(grace=0)
