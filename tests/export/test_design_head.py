"""The generation head (``design``) as a user drives it, on a toy conditional GAN and a toy Phi
(the head is generic over any differentiable networks): the export follows the contract with
stock ops only; a fresh process without project code answers as the same preference
maximisation called in Python on the same seed; the parts round trip through a run directory;
same seed, same designs; an unknown customer is the mean customer, flagged; bad requests are
INVALID_ARGUMENT naming the problem, in the graph and over our gRPC server with TF Serving's
own stubs; the warm-up replays."""

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.models.design import initial_latents, maximise_preference, softmax_sample
from tfrec_fashion.training.serving_parts import (DesignSettings, GenerationParts, load_parts,
                                                  save_parts)
from tfrec_fashion_export.design import DesignModule
from tfrec_fashion_export.writer import export_parts
from tfrec_fashion_serving import client, contract, testing
from tfrec_fashion_serving.servable import read_signature_defs
from tests.export.toy_gan import CATEGORIES, LATENT, PHI_SIDE, SETTINGS, SIDE, toy_parts

def designs_in_python(gan, parts, theta, category, n, seed, eta):
    """The same functions the head runs, called eagerly: (images, scores, objective)."""
    settings = parts.settings
    z_prime = initial_latents(settings.restarts, LATENT, seed)
    designs = maximise_preference(gan.generate, gan.discriminate, gan.phi, theta,
                                  CATEGORIES.index(category), z_prime, settings.steps,
                                  settings.learning_rate, eta, phi_size=(PHI_SIDE, PHI_SIDE))
    chosen = softmax_sample(designs.objective, n, seed).numpy()
    return (designs.images.numpy()[chosen], designs.preference.numpy()[chosen],
            designs.objective.numpy()[chosen])


@pytest.fixture(scope="module")
def toy():
    return toy_parts()


@pytest.fixture(scope="module")
def base(toy, tmp_path_factory):
    _, parts = toy
    base = tmp_path_factory.mktemp("base")
    export_parts(parts, base, "toy_gan")
    return base


REQUEST = contract.design_inputs(["u1", "nobody", "u3", "u1"], ["shoes", "top", "bag", "shoes"],
                                 n=3, seed=[4, 5, 6, 4], eta=[0.5, 0.0, 2.0, 0.5])


def check_answer(answer, gan, parts, assert_close):
    """Every row equals the Python ascent on its seed (the unknown customer with the mean
    theta); the objective is the score less eta times D's penalty of the very images."""
    assert answer["images"].shape == (4, 3, SIDE, SIDE, 3)
    np.testing.assert_array_equal(answer["cold_start"], [False, True, False, False])
    thetas = [parts.user_vectors[1], parts.cold_start_vector, parts.user_vectors[3],
              parts.user_vectors[1]]
    for row, theta in enumerate(thetas):
        category = REQUEST["category"][row].decode()
        images, scores, objective = designs_in_python(
            gan, parts, theta, category, 3, int(REQUEST["seed"][row]), REQUEST["eta"][row])
        assert_close(answer["images"][row], images, ulps=256, scale=1.0)
        assert_close(answer["scores"][row], scores, ulps=256, scale=np.abs(scores).max())
        assert_close(answer["objective"][row], objective, ulps=256,
                     scale=np.abs(objective).max())
        realism = gan.discriminate(answer["images"][row],
                                   np.full(3, CATEGORIES.index(category), np.int32)).numpy()
        assert_close(answer["objective"][row],
                     answer["scores"][row] - REQUEST["eta"][row] * (realism - 1.0) ** 2,
                     ulps=256, scale=np.abs(objective).max() + 1.0)
    np.testing.assert_array_equal(answer["images"][0], answer["images"][3])  # same seed
    assert ((answer["images"] >= 0) & (answer["images"] <= 1)).all()


def test_the_export_follows_the_contract_and_describes_itself(base):
    version = base / "toy_gan" / "1"
    defs = read_signature_defs(str(version))
    assert contract.differences(contract.DESIGN, defs["design"]) == []
    assert contract.differences(contract.DESIGN, defs[contract.SERVING_DEFAULT]) == []
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    assert info["head"] == "generation" and info["signatures"] == ["design", "serving_default"]
    assert info["categories"] == CATEGORIES and info["image_shape"] == [SIDE, SIDE, 3]
    assert info["design"] == {"restarts": 8, "steps": 8, "learning_rate": 0.1, "max_n": 8,
                              "command_line_eta": 0.5}
    assert info["dvbpr_run"] == "runs/toy_dvbpr"
    assert info["ops"]["non_stock"] == []  # the ascent is stock ops: stock TF Serving runs it


def test_a_fresh_process_answers_as_the_python_ascent_on_the_same_seed(toy, base,
                                                                       assert_close):
    gan, parts = toy
    answers, imported = testing.answers_in_fresh_process(str(base / "toy_gan" / "1"),
                                                        {"design": REQUEST})
    assert imported == []
    check_answer(answers["design"], gan, parts, assert_close)


def test_same_seed_same_designs_and_the_ascent_raises_the_score(toy, base):
    gan, parts = toy
    model = tf.saved_model.load(str(base / "toy_gan" / "1"))
    design = model.signatures["design"]

    def ask(**inputs):
        request = contract.design_inputs(**{"user_ids": ["u2"], "category": "top", "n": 8,
                                            "eta": 1.0, **inputs})
        return {key: value.numpy() for key, value in design(
            **{key: tf.constant(value) for key, value in request.items()}).items()}

    first, again, other = ask(seed=9), ask(seed=9), ask(seed=10)
    for key in ("images", "scores", "objective"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.allclose(np.sort(first["scores"]), np.sort(other["scores"]))
    # n = m returns every restart once, in the order drawn: after 8 steps with eta = 0 the
    # customer's score of each restart is above its score at the start.
    ascended = ask(seed=9, eta=0.0)["scores"][0]
    z_prime = initial_latents(SETTINGS.restarts, LATENT, 9)
    start = maximise_preference(gan.generate, gan.discriminate, gan.phi, parts.user_vectors[2],
                                2, z_prime, 0, 0.1, 0.0, phi_size=(PHI_SIDE, PHI_SIDE))
    assert ascended.sum() > start.preference.numpy().sum() + 0.5


def test_the_parts_round_trip_through_a_run_directory(toy, tmp_path, assert_close):
    gan, parts = toy
    save_parts(parts, tmp_path / "serving")
    back = load_parts(tmp_path)
    assert isinstance(back, GenerationParts) and back.categories == CATEGORIES
    assert back.settings == SETTINGS and back.image_shape == [SIDE, SIDE, 3]
    assert back.info["dvbpr_run"] == "runs/toy_dvbpr"
    np.testing.assert_array_equal(back.item_images, parts.item_images)
    np.testing.assert_array_equal(back.item_categories, parts.item_categories)
    np.testing.assert_array_equal(back.user_vectors, parts.user_vectors)
    z = tf.constant(np.random.default_rng(0).normal(size=(3, LATENT)), tf.float32)
    category = tf.constant([0, 2, 1])
    images = parts.gan.generate(z, category)
    assert_close(back.gan.generate(z, category).numpy(), images.numpy())
    assert_close(back.gan.discriminate(images, category).numpy(),
                 parts.gan.discriminate(images, category).numpy())
    big = tf.image.resize(images, [PHI_SIDE, PHI_SIDE], method="nearest")
    assert_close(back.phi.embed(big).numpy(), parts.phi.embed(big).numpy())
    # The loaded parts export and answer as the originals.
    version = export_parts(back, tmp_path / "base", "toy_gan")
    answer = tf.saved_model.load(str(version)).signatures["design"](
        **{key: tf.constant(value) for key, value in REQUEST.items()})
    check_answer({key: value.numpy() for key, value in answer.items()}, gan, parts,
                 assert_close)


def test_parts_refuse_what_cannot_serve(toy):
    _, parts = toy
    with pytest.raises(ValueError, match="categories must be distinct"):
        GenerationParts(parts.user_ids, parts.user_vectors, ["top", "top"], parts.gan,
                        parts.phi)
    with pytest.raises(ValueError, match=r"user_vectors must be \[5, K\]"):
        GenerationParts(parts.user_ids, parts.user_vectors[:2], CATEGORIES, parts.gan,
                        parts.phi)
    with pytest.raises(ValueError, match=r"categories the GAN lacks: \['hats'\]"):
        GenerationParts(parts.user_ids, parts.user_vectors, CATEGORIES, parts.gan, parts.phi,
                        item_ids=["i0"], item_categories=["hats"])
    with pytest.raises(ValueError, match=r"item_images must be uint8 \[6, 4, 4, 3\]"):
        GenerationParts(parts.user_ids, parts.user_vectors, CATEGORIES, parts.gan, parts.phi,
                        item_ids=parts.item_ids, item_categories=parts.item_categories,
                        item_images=parts.item_images[:, :2])
    with pytest.raises(ValueError, match="restarts must be a positive integer"):
        DesignSettings(restarts=0)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        DesignSettings(eta=-1.0)
    with pytest.raises(ValueError, match="unknown category 'hats'; the categories are bag, "
                                         "shoes, top"):
        parts.category_index("hats")


BAD = [
    ({"category": ["hats"]}, "design: unknown category; the categories are bag, shoes, top"),
    ({"n": [0]}, r"n must be in \[1, 8\]"),
    ({"n": [9]}, r"n must be in \[1, 8\] \(m, the restarts of the ascent"),
    ({"user_id": ["u0", "u1"], "n": [2, 3]}, "n must be the same for every row"),
    ({"eta": [-1.0]}, "eta must be a finite number >= 0"),
    ({"user_id": ["u0", "u1", "u2"], "seed": [1, 2]}, "seed must have batch size 1 or that "
                                                     "of user_id"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m[:32] for _, m in BAD])
def test_bad_requests_fail_in_the_graph_naming_the_problem(base, change, message):
    model = tf.saved_model.load(str(base / "toy_gan" / "1"))
    inputs = {"user_id": tf.constant(["u0"]), "category": tf.constant(["top"]),
              **{tensor.name: tensor.default_tensor() for tensor in contract.DESIGN.inputs
                 if tensor.default is not None}}
    inputs.update({name: tf.constant(value) for name, value in change.items()})
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.signatures["design"](**inputs)


def test_a_model_with_fewer_restarts_than_the_default_n_names_its_range(tmp_path):
    _, parts = toy_parts(DesignSettings(restarts=4, steps=2, learning_rate=0.1))
    module = DesignModule(parts)
    inputs = {"user_id": tf.constant(["u0"]), "category": tf.constant(["top"])}
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"n must be in \[1, 4\]"):
        module.design(**inputs)  # the default n, 8
    assert module.design(**inputs, n=tf.constant([4]))["images"].shape == (1, 4, SIDE, SIDE, 3)


def test_warmup_replays_and_our_server_answers_the_official_client(toy, base, assert_close):
    from tfrec_fashion_serving.server import start_server

    gan, parts = toy
    version = base / "toy_gan" / "1"
    assert testing.replay_warmup(version) == ["design"]
    with start_server(str(base / "models.config"), port=0) as server:
        server.wait_until_available("toy_gan", timeout=120, version=1)
        target = f"127.0.0.1:{server.port}"
        answer = client.design(target, "toy_gan", ["u1", "nobody", "u3", "u1"],
                               ["shoes", "top", "bag", "shoes"], n=3, seed=[4, 5, 6, 4],
                               eta=[0.5, 0.0, 2.0, 0.5])
        assert answer["version"] == 1
        check_answer(answer, gan, parts, assert_close)
        default = client.predict(target, "toy_gan", {
            "user_id": contract.string_array(["u0"]), "category": contract.string_array(["top"])})
        assert default["images"].shape == (1, contract.DEFAULT_DESIGNS, SIDE, SIDE, 3)
        for inputs, message in (({"category": ["hats"]}, "unknown category"),
                                ({"n": [0]}, "n must be in [1, 8]"),
                                ({"n": [9]}, "n must be in [1, 8]")):
            request = {"user_id": ["u0"], "category": ["top"], **inputs}
            with pytest.raises(grpc.RpcError) as error:
                client.predict(target, "toy_gan",
                               {name: contract.string_array(value) if name != "n"
                                else np.array(value, np.int32)
                                for name, value in request.items()}, signature="design")
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in error.value.details()


def test_a_conditional_lsgan_run_directory_serves_its_python_ascent(tmp_path, assert_close):
    """The real networks' path, as the design_gan recipe writes it: Keras G, D and Phi saved as
    the run's parts, loaded, exported (the ascent differentiates the restored functions) and
    answering in a fresh process as the ascent through the original Keras models."""
    from tfrec_fashion.models.lsgan import ConditionalLSGAN
    from tfrec_fashion.training.serving_parts import ConditionalGan, ItemEmbedder

    tf.keras.utils.set_random_seed(0)
    gan = ConditionalLSGAN(len(CATEGORIES), image_size=8, latent_dim=LATENT,
                           generator_filters=4, discriminator_filters=4)
    phi = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.Flatten(),
                               tf.keras.layers.Dense(3)])
    users = np.random.default_rng(5).normal(size=(3, 3)).astype(np.float32)
    parts = GenerationParts(
        ["a", "b", "c"], users, CATEGORIES,
        ConditionalGan(LATENT, (8, 8, 3), lambda z, c: gan.generator([z, c], training=False),
                       lambda x, c: gan.discriminator([x, c], training=False), gan.variables),
        ItemEmbedder("image", tf.TensorSpec([None, 8, 8, 3], tf.float32, "image"),
                     lambda images: phi(images, training=False), phi.variables), SETTINGS)
    save_parts(parts, tmp_path / "run" / "serving")
    version = export_parts(load_parts(tmp_path / "run"), tmp_path / "base", "lsgan")
    request = contract.design_inputs(["c", "b"], ["top", "bag"], 3, [2, 3], [1.0, 0.0])
    answer = testing.answers_in_fresh_process(str(version), {"design": request})[0]["design"]
    for row, (user, category, seed, eta) in enumerate((("c", "top", 2, 1.0),
                                                       ("b", "bag", 3, 0.0))):
        z_prime = initial_latents(SETTINGS.restarts, LATENT, seed)
        designs = maximise_preference(gan.generator, gan.discriminator, phi,
                                      users["abc".index(user)], CATEGORIES.index(category),
                                      z_prime, SETTINGS.steps, SETTINGS.learning_rate, eta)
        chosen = softmax_sample(designs.objective, 3, seed).numpy()
        assert_close(answer["images"][row], designs.images.numpy()[chosen], ulps=256,
                     scale=1.0)
        scores = designs.preference.numpy()[chosen]
        assert_close(answer["scores"][row], scores, ulps=256, scale=np.abs(scores).max())
        assert np.ptp(scores) > 0  # the designs differ: the check compares something
