"""Feature maps, Grad-CAM, overlays and the sanity check (densenet_tutorial.visualize).

Grad-CAM is compared with its formula computed here independently (a GradientTape on the
model split at the layer, and numpy on a linear model) and with tf-keras-vis's ``Gradcam``.
"""

import cv2
import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from scipy.integrate import trapezoid

from densenet_tutorial import visualize
from densenet_tutorial.cli import main
from densenet_tutorial.errors import MissingInputError
from densenet_tutorial.model import build_densenet

matplotlib.use("Agg")

SIZE = 64
TINY = dict(blocks=(2, 2, 2), growth_rate=4, input_shape=(SIZE, SIZE, 3))


def tiny_densenet(**kwargs):
    keras.utils.set_random_seed(0)
    return build_densenet(**{**TINY, **kwargs})


@pytest.fixture(scope="module")
def model():
    return tiny_densenet()


@pytest.fixture(scope="module")
def models(model):
    """The tiny DenseNet with one logit, and with three (a multi-class head)."""
    return {1: model, 3: tiny_densenet(num_classes=3)}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)


def reference_grad_cam(model, images, layer_name, classes):
    """Selvaraju et al. Eq. 1-2 on the model split at ``layer_name``, resized with OpenCV."""
    layer = model.get_layer(layer_name)
    features = keras.Model(model.input, layer.output)(images)
    rest = keras.Model(layer.output, model.output)
    with tf.GradientTape() as tape:
        tape.watch(features)
        logits = rest(features)
        if logits.shape[-1] == 1:
            score = np.where(classes == 1, 1.0, -1.0).astype(np.float32) * logits[:, 0]
        else:
            score = tf.reduce_sum(tf.one_hot(classes, logits.shape[-1]) * logits, axis=-1)
    gradients = tape.gradient(score, features).numpy()
    alpha = gradients.mean(axis=(1, 2))
    maps = np.maximum(np.einsum("nk,nhwk->nhw", alpha, features.numpy()), 0)
    maps = np.stack([cv2.resize(m, images.shape[2:0:-1]) for m in maps])
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


@pytest.mark.parametrize("layer_name", ["relu", "conv3_block2_concat"])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_grad_cam_equals_the_formula(models, images, layer_name, num_classes):
    model = models[num_classes]
    logits = model.predict(images, verbose=0)
    predicted = (logits[:, 0] >= 0).astype(int) if num_classes == 1 else logits.argmax(-1)
    expected = reference_grad_cam(model, images, layer_name, predicted)
    assert np.all(expected.max(axis=(1, 2)) == 1)  # non-trivial maps
    np.testing.assert_allclose(visualize.grad_cam(model, images, layer_name), expected, atol=1e-5)
    target = list(1 - predicted) if num_classes == 1 else 2  # the other class / class 2
    expected = reference_grad_cam(model, images, layer_name, np.broadcast_to(target, (4,)))
    got = visualize.grad_cam(model, images, layer_name, target=target)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def region_model():
    """logit = mean over the top-left quadrant of (red - blue): nothing else matters."""
    image = keras.Input((32, 32, 3))
    colour = layers.Conv2D(2, 1, use_bias=False, name="colour")(image)  # red, blue
    cells = layers.AveragePooling2D(4, name="cells")(colour)  # 8x8 cells of 4x4 pixels
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[:, :4, :4] = 1
    region = layers.Lambda(lambda x: x * mask, name="region")(cells)
    pooled = layers.GlobalAveragePooling2D()(region)
    logit = layers.Dense(1, use_bias=False, name="logit")(pooled)
    model = keras.Model(image, logit)
    model.get_layer("colour").set_weights(
        [np.array([[1, 0], [0, 0], [0, 1]], np.float32)[None, None]]
    )
    model.get_layer("logit").set_weights([np.array([[1], [-1]], np.float32)])
    return model, mask[0, ..., 0]


def region_image():
    """White everywhere; in the top-left quadrant a red area and a smaller blue one."""
    image = np.full((1, 32, 32, 3), 255, np.float32)
    image[0, :16, :16] = 0
    image[0, :16, :8] = (255, 0, 0)
    image[0, :8, 8:16] = (0, 0, 255)
    return image


@pytest.mark.parametrize("method", [visualize.grad_cam, visualize.grad_cam_plus_plus])
@pytest.mark.parametrize(("target", "area"), [("dog", (slice(0, 16), slice(0, 8))),
                                              ("cat", (slice(0, 8), slice(8, 16))),
                                              (None, (slice(0, 16), slice(0, 8)))])  # fmt: skip
def test_heatmap_peaks_in_the_region_the_logit_reads(method, target, area):
    model, _ = region_model()
    heatmap = method(model, region_image(), "region", target=target)[0]
    row, column = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert area[0].start <= row < area[0].stop and area[1].start <= column < area[1].stop
    # The white outside the quadrant is bright in both colours but does not count: no heat.
    assert heatmap[18:].max() == 0 and heatmap[:, 18:].max() == 0


def test_grad_cam_of_a_linear_model_equals_numpy():
    model, mask = region_model()
    image = region_image()
    cells = image[0].reshape(8, 4, 8, 4, 3).mean(axis=(1, 3))  # 4x4 average pooling
    features = np.stack([cells[..., 0], cells[..., 2]], -1) * mask[..., None]
    alpha = np.array([1, -1]) / 64  # d logit / d features: the Dense weight over 8x8 positions
    for target, sign in (("dog", 1), ("cat", -1)):
        expected = np.maximum(sign * features @ alpha, 0)
        got = visualize.grad_cam(model, image, "region", target=target, size=(8, 8))[0]
        np.testing.assert_allclose(got, expected / expected.max(), atol=1e-6)


@pytest.mark.parametrize("layer_name", ["relu", "conv3_block2_concat"])
def test_grad_cam_agrees_with_tf_keras_vis(model, images, layer_name):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

    signs = np.where(model.predict(images, verbose=0)[:, 0] >= 0, 1.0, -1.0).astype(np.float32)

    def score(logits):  # the predicted class's score: +logit for dog, -logit for cat
        return logits[:, 0] * signs

    options = dict(penultimate_layer=layer_name, seek_penultimate_conv_layer=False)
    size = model.get_layer(layer_name).output.shape[1:3]
    peer = Gradcam(model)(score, images, expand_cam=False, normalize_cam=False, **options)
    peer = peer.numpy() / peer.numpy().max(axis=(1, 2), keepdims=True)
    # At the layer's resolution the two are the same numbers.
    np.testing.assert_allclose(
        visualize.grad_cam(model, images, layer_name, size=size), peer, atol=1e-5
    )
    # Upsampled they differ only by interpolation: tf-keras-vis uses scipy.ndimage.zoom
    # (corners aligned), we use tf.image.resize (pixel centres aligned, as OpenCV).
    peer_full = Gradcam(model)(score, images, **options)
    ours_full = visualize.grad_cam(model, images, layer_name)
    for ours, theirs in zip(ours_full, peer_full, strict=True):
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.85
    # Grad-CAM++: tf-keras-vis also normalises the per-position weights (as the authors'
    # code does, not the paper's closed form), so the maps are close, not equal.
    peer = GradcamPlusPlus(model)(score, images, expand_cam=False, normalize_cam=False, **options)
    ours = visualize.grad_cam_plus_plus(model, images, layer_name, size=size)
    for a, b in zip(ours, peer.numpy(), strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95


@pytest.mark.parametrize("method", [visualize.grad_cam, visualize.grad_cam_plus_plus])
def test_heatmap_shape_range_dtype_and_batches(model, images, method):
    heatmaps = method(model, images)
    assert heatmaps.shape == (4, SIZE, SIZE) and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0 and np.allclose(heatmaps.max(axis=(1, 2)), 1)
    np.testing.assert_allclose(method(model, images, batch_size=3), heatmaps, atol=1e-6)


@pytest.mark.parametrize("method", [visualize.grad_cam, visualize.grad_cam_plus_plus])
def test_vanishing_gradient_gives_zeros_not_nan(images, method):
    model = tiny_densenet()
    kernel, bias = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([np.zeros_like(kernel), bias])
    heatmaps = method(model, images)
    assert not np.isnan(heatmaps).any() and np.all(heatmaps == 0)


def test_bad_layer_and_target_are_clear_errors(model, images):
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        visualize.grad_cam(model, images, "conv9")
    with pytest.raises(ValueError, match="target='horse' is not a class"):
        visualize.grad_cam(model, images, target="horse")


def test_mixed_precision_model_gives_the_float32_maps(model, images):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_densenet(**TINY)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(model.get_weights())
    assert mixed.get_layer("relu").compute_dtype == "bfloat16"
    for method in (visualize.grad_cam, visualize.grad_cam_plus_plus):
        heatmaps = method(mixed, images)
        assert heatmaps.dtype == np.float32
        np.testing.assert_allclose(heatmaps, method(model, images), atol=1e-6)


def test_overlay_puts_hot_in_the_red_channel():
    image = np.zeros((20, 30, 3), np.uint8)
    heatmap = np.zeros((10, 15), np.float32)  # resized to the image
    heatmap[:, :7] = 1
    result = visualize.overlay(image, heatmap, alpha=1.0)
    assert result.shape == (20, 30, 3) and result.dtype == np.uint8
    hot, cold = result[:, :10].reshape(-1, 3), result[:, 20:].reshape(-1, 3)
    assert np.all(hot[:, 0] > 100) and np.all(hot[:, 2] == 0)  # JET's top: red
    assert np.all(cold[:, 2] > 100) and np.all(cold[:, 0] == 0)  # JET's bottom: blue
    photo = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    np.testing.assert_array_equal(visualize.overlay(photo, heatmap, alpha=0.0), photo)


def test_feature_maps_default_to_one_layer_per_stage(model, images):
    expected = ["pool1", "conv2_block2_concat", "pool2_pool", "conv3_block2_concat",
                "pool3_pool", "conv4_block2_concat", "relu"]  # fmt: skip
    assert visualize.default_feature_layers(model) == expected
    efficient = tiny_densenet(memory_efficient=True)
    assert visualize.default_feature_layers(efficient) == expected
    maps = visualize.feature_maps(model, images[0])
    assert list(maps) == expected
    for name, activation in maps.items():
        assert activation.shape == model.get_layer(name).output.shape[1:]
    figure = visualize.plot_feature_maps(maps, channels=4)
    titles = [t.get_text() for t in figure.findobj(matplotlib.text.Text)]
    assert any(t.startswith("conv3_block2_concat  (8x8x16)  channels ") for t in titles)
    with pytest.raises(ValueError, match="pass layer_names"):
        visualize.default_feature_layers(region_model()[0])


def test_dense_connectivity_follows_the_weights(images):
    model = tiny_densenet()
    matrix = visualize.dense_connectivity(model, images[0], block=2)
    # Sources: block input (8 ch), layer 1, layer 2; targets: layer 1, layer 2, transition.
    assert matrix.shape == (3, 3)
    assert np.isnan(matrix[1:, 0]).all() and np.isnan(matrix[2, 1])
    assert not np.isnan(matrix[:, 2]).any() and (matrix[~np.isnan(matrix)] > 0).all()
    conv = model.get_layer("conv3_block2_1_conv")  # layer 2 reads 8 + 4 channels
    kernel = conv.get_weights()[0]
    kernel[:, :, 8:] = 0  # cut layer 2 off from layer 1's new channels
    kernel[:, :, :8] *= 2  # and double what it takes from the block input
    conv.set_weights([kernel])
    changed = visualize.dense_connectivity(model, images[0], block=2)
    assert changed[1, 1] == 0
    np.testing.assert_allclose(changed[0, 1], 2 * matrix[0, 1], rtol=1e-6)
    np.testing.assert_array_equal(changed[:, 0], matrix[:, 0])  # layer 1 reads as before
    # The transition reads the same input and layer 1 as before, and a changed layer 2.
    np.testing.assert_array_equal(changed[:2, 2], matrix[:2, 2])
    visualize.plot_dense_connectivity(changed, block=2)
    with pytest.raises(ValueError, match="memory_efficient=False"):
        visualize.dense_connectivity(tiny_densenet(memory_efficient=True), images[0])


def test_randomising_weights_destroys_the_heatmap(model, images):
    before = model.get_weights()
    result = visualize.cascading_randomization(model, images, seed=1)
    assert result["steps"] == ["original", "predictions", "bn", "conv4", "pool3", "conv3",
                               "pool2", "conv2", "conv1"]  # fmt: skip
    correlation = result["correlation"]
    assert correlation.shape == (9, 4) and result["heatmaps"].shape == (9, 4, SIZE, SIZE)
    assert np.all(correlation[0] == 1)
    assert correlation[1:].mean() < 0.5  # a heatmap that stayed the same would mean nothing
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    visualize.plot_randomization(result, images[0])


def test_gallery_puts_correct_and_wrong_side_by_side(images):
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0]])  # predicted: dog, cat, dog, cat
    figure = visualize.plot_gallery(images, [1, 1, 0, 0], logits)
    correct, wrong = figure.subfigs
    assert correct._suptitle.get_text() == "correct (2 shown)"
    titles = [axes.get_title() for axes in wrong.axes if axes.get_title()]
    assert titles == ["true dog\npred cat 0.73", "true cat\npred dog 0.62"]


def test_explain_cli_writes_overlays(model, tmp_path, capsys):
    model.save(tmp_path / "best.keras")
    paths = []
    for name, shape in (("cat.1.jpg", (90, 120, 3)), ("dog.2.png", (64, 64, 3))):
        paths.append(tmp_path / name)
        cv2.imwrite(str(paths[-1]), np.random.default_rng(1).integers(0, 256, shape, np.uint8))
    out = tmp_path / "out"
    argv = ["explain", "--model", str(tmp_path / "best.keras"), "--out", str(out), "--images"]
    assert main(argv + [str(p) for p in paths]) == 0
    for name in ("cat.1_gradcam.png", "dog.2_gradcam.png"):  # as the model sees them
        assert cv2.imread(str(out / name)).shape == (SIZE, SIZE, 3)
    assert "cat.1.jpg: " in capsys.readouterr().out
    assert main(argv[:2] + [str(tmp_path / "none.keras")] + argv[3:] + [str(paths[0])]) == 2
    (tmp_path / "broken.jpg").write_text("not an image")
    assert main(argv + [str(tmp_path / "broken.jpg")]) == 2
    assert "error: " in capsys.readouterr().err


# --- your own photo -----------------------------------------------------------------------------


def test_explain_photo_gives_the_prediction_and_both_classes_maps(model, tmp_path):
    from densenet_tutorial.notebooks import photo_path

    path = photo_path()  # no photo given, not on Colab: the shipped cat
    assert path.name == "chelsea.png" and path.is_file()
    result = visualize.explain_photo(model, path)
    assert result["image"].shape == (SIZE, SIZE, 3) and result["image"].dtype == np.uint8
    logit = float(model.predict(result["image"][None].astype("float32"), verbose=0)[0, 0])
    assert result["predicted"] == ("dog" if logit > 0 else "cat")
    assert result["probability"] == pytest.approx(1 / (1 + np.exp(-abs(logit))), rel=1e-5)
    for name, heatmap in result["heatmaps"].items():
        image = result["image"][None].astype("float32")  # explained at cam_layer's maps
        expected = visualize.grad_cam(model, image, visualize.cam_layer(model), target=name)
        np.testing.assert_allclose(heatmap, expected[0], atol=1e-6)
    figure = visualize.plot_photo(result)
    assert len(figure.axes) == 3
    with pytest.raises(MissingInputError, match="No image file"):
        visualize.explain_photo(model, tmp_path / "missing.jpg")


def test_on_colab_the_photo_is_the_one_uploaded(colab_kernel, monkeypatch, tmp_path):
    from pathlib import Path

    from densenet_tutorial import notebooks

    upload = tmp_path / "my cat.jpg"
    cv2.imwrite(str(upload), np.full((40, 60, 3), 128, np.uint8))
    monkeypatch.setenv("FAKE_COLAB_UPLOAD", str(upload))
    monkeypatch.chdir(tmp_path)
    path = notebooks.photo_path()
    assert path.read_bytes() == upload.read_bytes() and path != upload
    assert notebooks.photo_path("given.jpg") == Path("given.jpg")  # a path given wins


# --- faithfulness: deletion, insertion, energy, pointing ---------------------------------------


def test_area_under_a_hand_made_curve():
    from densenet_tutorial.visualize.faithfulness import area_under_curve

    assert area_under_curve([1.0, 0.5, 0.0]) == pytest.approx(0.5)  # a straight line down
    assert area_under_curve([1.0, 0.0, 0.0, 0.0, 0.0]) == pytest.approx(0.125)  # falls at once
    assert area_under_curve([0.2, 0.6, 1.0, 1.0]) == pytest.approx((0.4 + 0.8 + 1.0) / 3)


def texture_model_and_image():
    """A model whose logit reads only the fine texture (|Laplacian|) of the top-left quadrant,
    and an image whose texture is a checkerboard there: blur removes the evidence."""
    image = np.full((1, 32, 32, 3), 128, np.float32)
    image[0, :16, :16] = np.kron(np.indices((8, 8)).sum(0) % 2, np.ones((2, 2)))[..., None] * 255
    inputs = keras.Input((32, 32, 3))
    grey = layers.Conv2D(1, 1, use_bias=False, name="grey")(inputs)
    edges = layers.Conv2D(1, 3, padding="same", use_bias=False, name="laplacian")(grey)
    strength = layers.Lambda(keras.ops.abs, name="strength")(edges)
    mask = np.zeros((1, 32, 32, 1), np.float32)
    mask[:, :16, :16] = 1
    region = layers.Lambda(lambda x: x * mask, name="region")(strength)
    logit = layers.Dense(1, name="logit")(layers.GlobalAveragePooling2D()(region))
    model = keras.Model(inputs, logit)
    model.get_layer("grey").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32)])
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)[..., None, None]
    model.get_layer("laplacian").set_weights([laplacian])
    texture = float(keras.Model(inputs, layers.GlobalAveragePooling2D()(region))(image)[0, 0])
    model.get_layer("logit").set_weights([np.array([[4 / texture]], np.float32),
                                          np.array([-1.0], np.float32)])  # fmt: skip
    return model, image


def test_deletion_and_insertion_rank_the_true_map_above_a_random_one():
    """The logit reads only the top-left quadrant: the map of that region deletes the evidence
    fastest (low deletion AUC) and restores it fastest (high insertion AUC) than a random map.
    """
    from densenet_tutorial.visualize import faithfulness

    model, image = texture_model_and_image()
    assert float(model(image)[0, 0]) == pytest.approx(3.0, abs=1e-4)
    true_map = np.zeros((1, 32, 32), np.float32)
    true_map[0, :16, :16] = 1 + np.random.default_rng(0).uniform(size=(16, 16))
    random_map = faithfulness.random_maps(1, 32, 32, seed=3)
    true = faithfulness.deletion_insertion(model, image, true_map, target="dog", steps=16)
    chance = faithfulness.deletion_insertion(model, image, random_map, target="dog", steps=16)
    assert true["deletion"][0] < chance["deletion"][0] - 0.1
    assert true["insertion"][0] > chance["insertion"][0] + 0.1
    dog = 1 / (1 + np.exp(-3.0))  # P(dog) of the whole image: its logit is 3, above
    for result, heatmap in ((true, true_map), (chance, random_map)):
        scores = faithfulness.curves(model, image[0], heatmap[0], 1, steps=16)
        assert scores["deletion"][0] == pytest.approx(dog, abs=1e-4)  # nothing deleted yet
        assert scores["insertion"][-1] == pytest.approx(dog, abs=1e-4)  # everything inserted
        for kind, values in scores.items():  # each AUC is the trapezoid rule's area
            assert result[kind][0] == pytest.approx(trapezoid(values, dx=1 / 16))


def test_energy_inside_and_pointing_game_on_hand_made_maps():
    from densenet_tutorial.visualize import faithfulness

    masks = np.zeros((2, 4, 4), bool)
    masks[:, :2, :2] = True  # the object: the top-left 2x2 of 4x4
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 0, 0], maps[0, 3, 3] = 3.0, 1.0  # 3 of 4 inside, peak inside
    maps[1, 0, 1], maps[1, 2, 2] = 1.0, 2.0  # 1 of 3 inside, peak outside
    np.testing.assert_allclose(faithfulness.energy_inside(maps, masks), [0.75, 1 / 3])
    assert faithfulness.pointing_game(maps, masks).tolist() == [True, False]
    assert faithfulness.energy_inside(np.zeros((1, 4, 4)), masks[:1]).tolist() == [0.0]
    gaussian = faithfulness.centred_gaussians(1, 5, 7)[0]
    assert np.unravel_index(gaussian.argmax(), gaussian.shape) == (2, 3)


def test_faithfulness_table_has_every_method_and_auc(model, images):
    from densenet_tutorial.visualize.faithfulness import faithfulness_table

    table = faithfulness_table(model, images[:2], steps=4)
    assert list(table) == ["Grad-CAM", "Grad-CAM++", "random map", "centred Gaussian"]
    for row in table.values():
        for mean, spread in row.values():
            assert 0 <= mean <= 1 and spread >= 0


@pytest.mark.parametrize(
    ("size", "expected"), [(224, "relu"), (96, "conv3_block2_concat"), (64, "conv3_block2_concat")]
)
def test_cam_layer_is_relu_unless_its_maps_are_smaller_than_7x7(size, expected):
    """At 224 px the last block's maps are 7x7 (relu); at 96 px 3x3 and at 64 px 2x2, where
    the end of the second block (12x12, 8x8) is the deepest with maps of 7x7 or more."""
    model = build_densenet(blocks=(1, 2, 1, 1), growth_rate=4, input_shape=(size, size, 3))
    layer = visualize.cam_layer(model)
    assert layer == expected
    assert min(model.get_layer(layer).output.shape[1:3]) >= visualize.cam.SMALLEST_MAP
