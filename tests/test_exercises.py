"""Every exercise of the six notebooks, done as its text says, with what its "Check:" says.

One test per exercise, named after its notebook and number (``test_03_5_...``). They run in
quick mode on the generated images (notebook 01's quick split, with the animals' masks) and
tiny networks, calling the package functions the exercises name; where an exercise says
"run the notebook again with X", ``test_02_2`` and ``test_03_1`` do that with papermill. An
exercise that needs a GPU or a full run says so in the notebook; its code path runs here in
quick mode, and what only a full run can show (which k is worth its cost after 40 epochs,
how much ImageNet weights save) is not asserted.

DenseNet-169 (notebook 06) compiles its training step for over a minute on a CPU, so its
tests run TensorFlow's functions eagerly (``eagerly``): the same operations, one at a time,
without the graph; on a GPU notebook 06 runs them compiled.
"""

import contextlib
import hashlib
import json
import shutil
import textwrap
import warnings
from pathlib import Path

import cv2
import keras
import nbformat
import numpy as np
import pytest
import tensorflow as tf
from helpers import Record, StopAfter
from scipy.stats import rankdata

from densenet_tutorial import costs, demo, notebooks, training
from densenet_tutorial.architecture import architecture_table
from densenet_tutorial.config import QUICK, run_config
from densenet_tutorial.data import CLASS_NAMES, augmentation, make_dataset, prepare, read_split
from densenet_tutorial.data.split import split_counts
from densenet_tutorial.errors import SettingError
from densenet_tutorial.evaluate import read_history
from densenet_tutorial.model import (
    DENSENET121,
    DENSENET169,
    DENSENET201,
    DENSENET264,
    build_densenet,
    composite_function,
    dense_layer,
    densenet169,
    depth,
)
from densenet_tutorial.pretrained import load_imagenet_weights, random_weights_file
from densenet_tutorial.visualize import dense_connectivity, grad_cam, randomization_steps
from densenet_tutorial.visualize.cam import activations_and_gradients, copy_in_float32
from densenet_tutorial.visualize.sanity import rank_correlation
from densenet_tutorial.walkthrough import train_in_brief

ROOT = Path(__file__).resolve().parent.parent
TINY = {"blocks": (1, 1), "growth_rate": 4, "image_size": 32, "batch_size": 16, "epochs": 1}


@contextlib.contextmanager
def eagerly():
    """TensorFlow functions run eagerly inside, compiled again after. For these tiny runs on
    a few dozen images that is faster than compiling; DenseNet-169's training step takes over
    a minute to compile on this CPU."""
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def quick_images(tmp_path_factory):
    """Notebook 01 in quick mode: generated images (broken files and masks included), checked
    and split; the folder that holds ``splits/``, as ``find_images`` returns it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images"
        return notebooks.prepare_images(tmp_path_factory.mktemp("data"), quick=True)


def tiny_run(split, runs, **changes):
    """Notebook 03's run in quick mode with a tiny network, into the folder ``run_folder``
    names; returns the folder (a finished one is resumed: evaluated, not trained again)."""
    settings = run_config(True, **{**TINY, **changes})
    run = notebooks.run_folder(runs, settings, data=split)
    with eagerly():
        training.train(split, run, settings, verbose=0)
    return run


@pytest.fixture(scope="module")
def runs(synthetic_split, tmp_path_factory):
    """Tiny runs on the small generated split, each trained once for the tests that share it."""
    folder, done = tmp_path_factory.mktemp("runs"), {}

    def run(**changes):
        name = notebooks.run_folder(folder, run_config(True, **{**TINY, **changes}),
                                    data=synthetic_split)  # fmt: skip
        if name not in done:
            done[name] = tiny_run(synthetic_split, folder, **changes)
        return done[name]

    return run


@pytest.fixture(scope="module")
def trained(synthetic_split, tmp_path_factory):
    """Notebook 03 in quick mode, a 13-layer DenseNet in float32 at 64 px (the last stage
    2x2), remembered once trained; and test images drawn as notebook 04 draws them."""
    folder = tmp_path_factory.mktemp("trained")
    larger = {"blocks": (1, 1, 1, 1), "image_size": 64, "epochs": 2, "precision": "float32"}
    settings = run_config(True, **{**TINY, **larger})
    run = tiny_run(synthetic_split, folder, **larger)
    notebooks.remember_run(folder, settings)
    model = keras.saving.load_model(run / "best.keras")
    images, labels, _ = notebooks.draw_test_images(synthetic_split.parent, 12, 64)
    return {"runs": folder, "settings": settings, "run": run, "model": model, "images": images,
            "labels": labels}  # fmt: skip


def printed_text(executed):
    """Everything the cells of an executed notebook printed."""
    return "\n".join(
        output.get("text", "")
        for cell in nbformat.read(executed, as_version=4).cells
        for output in cell.get("outputs", [])
    )


# --- 01 · the data -----------------------------------------------------------------------


def test_01_1_predict_a_split(quick_images):
    assert split_counts({"cat": 12500, "dog": 12500})["train"] == {"cat": 8500, "dog": 8500}
    meta = json.loads((quick_images / "splits" / "meta.json").read_text())
    sizes = {c: sum(meta["counts"][p][c] for p in ("train", "val", "test")) for c in CLASS_NAMES}
    held_out = meta["counts"]["val"]["cat"]
    counts = split_counts(sizes, held_out, held_out)
    assert {c: meta["counts"]["train"][c] for c in CLASS_NAMES} == counts["train"]


def test_01_2_the_split_depends_on_the_seed_and_only_on_it(quick_images, tmp_path):
    meta = json.loads((quick_images / "splits" / "meta.json").read_text())
    held_out = {"val_per_class": meta["counts"]["val"]["cat"],
                "test_per_class": meta["counts"]["test"]["cat"]}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed1 = prepare(source=meta["source_root"], out=tmp_path / "seed1", seed=1, **held_out)
        again = prepare(source=meta["source_root"], out=tmp_path / "again", seed=1, **held_out)
    meta1 = json.loads((seed1 / "meta.json").read_text())
    assert meta1["counts"] == meta["counts"]
    paths = {part: {p for p, _ in read_split(split, "train")[1]}
             for part, split in (("seed0", quick_images / "splits"), ("seed1", seed1))}  # fmt: skip
    assert paths["seed0"] != paths["seed1"]
    for name in ("train.csv", "val.csv", "test.csv", "meta.json"):
        digest = [hashlib.sha256((folder / name).read_bytes()).hexdigest()
                  for folder in (seed1, again)]  # fmt: skip
        assert digest[0] == digest[1], name


def test_01_3_break_a_file(quick_images, tmp_path):
    root, rows = read_split(quick_images / "splits", "train")
    folder = tmp_path / "ten-of-each"
    for label, subfolder in (("cat", "cats"), ("dog", "dogs")):
        (folder / subfolder).mkdir(parents=True)
        for path, _ in [row for row in rows if row[1] == label][:10]:
            shutil.copy(root / path, folder / subfolder / Path(path).name)
    cut = next((folder / "cats").iterdir())
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    before = {p: p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # twenty photos: 68 / 16 / 16
        split = prepare(source=folder, out=tmp_path / "out")
    rejected = (tmp_path / "out" / "rejected.csv").read_text()
    assert cut.name in rejected and len(rejected.strip().splitlines()) == 2  # header + one
    meta = json.loads((split / "meta.json").read_text())
    assert sum(meta["counts"][part]["total"] for part in ("train", "val", "test")) == 19
    assert {p: p.stat().st_size for p in folder.rglob("*") if p.is_file()} == before


def exercise_code(notebook, marker):
    """The fenced Python block of ``notebook``'s markdown that contains ``marker``."""
    for cell in nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells:
        if cell.cell_type == "markdown" and marker in cell.source:
            blocks = cell.source.split("```python")[1:]
            code = next(block.split("```")[0] for block in blocks if marker in block)
            return textwrap.dedent(code)
    raise AssertionError(f"{notebook} has no exercise code with {marker!r}")


def test_01_4_a_stronger_augmentation_without_editing_the_package(quick_images, synthetic_split):
    namespace = {"augmentation": augmentation}
    exec(exercise_code("01_data.ipynb", "class Stronger"), namespace)  # the notebook's code
    Stronger = namespace["Stronger"]
    images, _ = next(iter(make_dataset(quick_images / "splits", "train", 64, 4, cache=False)))
    stronger = Stronger()
    draws = [stronger(images, step=step).numpy() for step in range(5)]
    assert all(draw.shape == images.shape for draw in draws)
    assert not np.allclose(draws[0], draws[1])  # a new draw each step
    # The step reaches the training augmentation inside: each draw is step s's crop, upside
    # down or not (a keras.Sequential would give step 0's crops at every step).
    for step, draw in enumerate(draws):
        crops = stronger.augment(images, step=step).numpy()
        for image, crop in zip(draw, crops, strict=True):
            assert np.allclose(image, crop) or np.allclose(image, crop[::-1])
    # What it costs: the quick network trained with it and without it, here on the small
    # split for one epoch of two steps: the code runs; which is better is the learner's run.
    recipe = {**QUICK, "epochs": 1}
    with eagerly(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = {
            name: train_in_brief(synthetic_split, **recipe, batch_size=32, augment=augment,
                                 steps_per_epoch=2, verbose=0)
            for name, augment in (("stronger", Stronger()), ("training's", None))
        }  # fmt: skip
    assert not [w for w in caught if "unbuilt state" in str(w.message)]  # its build() builds
    for history, _ in results.values():
        assert len(history["val_accuracy"]) == 1
        assert of_whole_images(history["val_accuracy"][-1], synthetic_split, "val")


def of_whole_images(accuracy, split, part):
    """Whether ``accuracy`` is a number of ``part``'s images over all of them, as an accuracy
    must be (one averaged over batches of unequal size, or of another part, is not)."""
    count = len(read_split(split, part)[1])
    return 0 <= accuracy <= 1 and abs(accuracy * count - round(accuracy * count)) < 1e-3


def pearson_of_ranks(a, b):
    """Spearman's rank correlation computed another way: Pearson's correlation of the ranks
    (ties share their mean rank); 0 for a constant map, as ``rank_correlation`` says."""
    a, b = rankdata(np.ravel(a)), rankdata(np.ravel(b))
    return 0.0 if np.ptp(a) == 0 or np.ptp(b) == 0 else float(np.corrcoef(a, b)[0, 1])


def average_hash(path):
    """Exercise 01.5's hash: the image in 8x8 grey pixels, 1 where above their mean."""
    grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (8, 8), interpolation=cv2.INTER_AREA)
    return (small > small.mean()).tobytes()


def test_01_5_a_copy_finder_finds_a_planted_copy(quick_images, tmp_path):
    root, train = read_split(quick_images / "splits", "train")
    _, test = read_split(quick_images / "splits", "test")
    planted = tmp_path / "copy-of-a-training-photo.jpg"
    shutil.copy(root / train[7][0], planted)
    train_hashes = {average_hash(root / path): path for path, _ in train}
    test_paths = [root / path for path, _ in test] + [planted]
    pairs = [(train_hashes[h], p) for p in test_paths if (h := average_hash(p)) in train_hashes]
    assert (train[7][0], planted) in pairs


# --- 02 · DenseNet-169 from scratch ------------------------------------------------------


def test_02_1_predict_a_count():
    full = build_densenet(blocks=DENSENET169, growth_rate=32).count_params()
    real = build_densenet(blocks=DENSENET169, growth_rate=16).count_params()
    predicted = full * (16 / 32) ** 2
    assert predicted < real < 1.1 * predicted  # a little larger: terms that grow only as k


def test_02_2_no_compression_rerun_the_notebook(tmp_path):
    """As written: notebook 02 run again (quick mode) with COMPRESSION = 1.0, as far as the
    stage table of section 7 that the check reads."""
    notebook = nbformat.read(ROOT / "notebooks" / "02_densenet_from_scratch.ipynb", as_version=4)
    table = next(
        i for i, c in enumerate(notebook.cells) if "format_architecture(model)" in c.source
    )
    notebook.cells = notebook.cells[: table + 1]
    path = tmp_path / "notebooks" / "02_first_cells.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    parameters = {**demo.quick_parameters(tmp_path / "runs", tmp_path / "data"),
                  "COMPRESSION": 1.0}  # fmt: skip
    printed = printed_text(demo.run_notebook(path, tmp_path, parameters))
    table = [row for line in printed.splitlines() if line.startswith("transition ")
             and (row := line.split())[2].isdigit()]  # the stage table's rows  # fmt: skip
    assert len(table) == 3
    for row in table:  # "transition 1  256  256  8x8  ...": out channels = in channels
        assert row[2] == row[3], row


def test_02_3_remove_the_bottleneck():
    k = 32
    for c in (64, 256, 1248):
        x = keras.Input((14, 14, c))
        plain = keras.Model(x, composite_function(x, k, 3, "bn", "relu", "conv"))
        assert plain.count_params() == 9 * c * k + 4 * c
        with_bottleneck = keras.Model(x, dense_layer(x, k, 4, "layer")).count_params()
        cheaper = "bottleneck" if with_bottleneck < plain.count_params() else "plain"
        assert cheaper == ("bottleneck" if c > 7.2 * k else "plain")


def test_02_4_counting_layers():
    assert depth(DENSENET264) == 265
    assert [depth(b) for b in (DENSENET121, DENSENET169, DENSENET201)] == [121, 169, 201]
    # Table 1's name counts 2 per dense layer, 1 per transition, the stem and the classifier.
    assert 2 * sum(DENSENET264) + 3 + 1 + 1 == 265


def test_02_5_memory_efficient_same_network_measured_in_fresh_processes():
    small = {"blocks": (1, 1), "growth_rate": 4, "input_shape": (32, 32, 3)}
    keras.utils.set_random_seed(0)
    plain = build_densenet(**small)
    efficient = build_densenet(**small, memory_efficient=True)
    efficient.set_weights(plain.get_weights())
    assert efficient.count_params() == plain.count_params()
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(efficient(images), plain(images), atol=1e-5)
    measured = {
        m: costs.measure_in_fresh_process(
            "densenet_tutorial.costs:measure_training",
            memory_efficient=m,
            blocks=[1, 1],
            growth_rate=4,
            image_size=32,
            batch_size=4,
            steps=1,
            warmup=1,
        )  # fmt: skip
        for m in (False, True)
    }
    for result in measured.values():
        assert result["peak_memory_mb"] > 0 and result["step_time_s"] > 0
    assert measured[True]["params"] == measured[False]["params"]


# --- 03 · training -----------------------------------------------------------------------


def test_03_1_the_schedule_of_another_batch_needs_no_training(trained, quick_images, tmp_path):
    """As written: the set-up, settings and section 1 cells of notebook 03 run again with
    BATCH_SIZE = 64; the trained run stays the one notebooks 04 to 06 follow."""
    notebook = nbformat.read(ROOT / "notebooks" / "03_train.ipynb", as_version=4)
    plot = next(i for i, c in enumerate(notebook.cells) if "warm-up, then cosine" in c.source)
    notebook.cells = notebook.cells[: plot + 1]  # up to the schedule's plot and printed peak
    path = tmp_path / "notebooks" / "03_first_cells.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    record = notebooks.last_run_file(trained["runs"], True)
    before = record.read_text()
    parameters = {"QUICK": True, "BATCH_SIZE": 64, "RUNS_DIR": str(trained["runs"]),
                  "DATA_DIR": str(quick_images.parent)}  # fmt: skip
    executed = demo.run_notebook(path, tmp_path, parameters)
    assert "peak 0.0250 = 0.1 x 64 / 256" in printed_text(executed)
    assert record.read_text() == before
    assert notebooks.trained_settings(trained["runs"], True).batch_size == TINY["batch_size"]


def test_03_2_what_smoothing_costs(trained):
    loss = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)
    best = np.log(0.95 / 0.05)  # the logit of probability 0.95
    smallest = -(0.95 * np.log(0.95) + 0.05 * np.log(0.05))
    assert float(loss([[1.0]], [[best]])) == pytest.approx(smallest, rel=1e-5)  # about 0.199
    for other in (best - 0.5, best + 0.5, 20.0):
        assert float(loss([[1.0]], [[other]])) > smallest
    history = read_history(trained["run"] / "history.csv")
    assert (history["loss"] >= smallest - 1e-6).all()


def test_03_3_resume_on_purpose(synthetic_split, tmp_path):
    settings = run_config(True, **{**TINY, "epochs": 2})
    run = notebooks.run_folder(tmp_path, settings, data=synthetic_split)
    watch = Record()  # where the resumed run starts
    with eagerly():
        with pytest.raises(KeyboardInterrupt):
            training.train(synthetic_split, run, settings, [StopAfter(0)], verbose=0)
        training.train(synthetic_split, run, settings, [watch], verbose=0)
    assert watch.epochs[0] == 1  # the progress bar says "Epoch 2/2"
    steps = json.loads((run / "config.json").read_text())["run"]["steps_per_epoch"]
    assert watch.start_step == steps  # the schedule goes on from there, not from the warm-up
    assert any((run / "backup").iterdir())
    rows = (run / "history.csv").read_text().strip().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [0, 1]  # each epoch once


def test_03_4_change_k_and_follow_it(synthetic_split, tmp_path):
    settings = run_config(True, **{**TINY, "growth_rate": 16})
    size = settings.image_size
    predicted = build_densenet(blocks=settings.blocks, growth_rate=16,
                               input_shape=(size, size, 3)).count_params()  # fmt: skip
    tiny_run(synthetic_split, tmp_path, growth_rate=16)
    notebooks.remember_run(tmp_path, settings)
    # Notebook 04, not edited: every setting None, so it follows the last trained run.
    followed = notebooks.trained_settings(tmp_path, True, growth_rate=None, blocks=None)
    found = notebooks.run_folder(tmp_path, followed, data=synthetic_split)
    best = notebooks.find_model(found, synthetic_split.parent, followed)
    assert keras.saving.load_model(best).count_params() == predicted


def test_03_5_augmentation_against_the_run_to_run_noise(runs):
    folders = {(augment, seed): runs(augment=augment, seed=seed)
               for augment in (True, False) for seed in (1, 2)}  # fmt: skip
    assert len({run.name for run in folders.values()}) == 4  # four folders, none refused
    assert all("-no-augment-" in run.name for (augment, _), run in folders.items() if not augment)
    gaps = {}
    for key, run in folders.items():
        history = read_history(run / "history.csv")
        gaps[key] = history["accuracy"][-1] - history["val_accuracy"][-1]
    spread = {a: abs(gaps[a, 1] - gaps[a, 2]) for a in (True, False)}
    difference = abs(np.mean([gaps[True, s] for s in (1, 2)]) -
                     np.mean([gaps[False, s] for s in (1, 2)]))  # fmt: skip
    assert np.isfinite([*spread.values(), difference]).all()


# --- 04 · inside the trained network -------------------------------------------------------


def test_04_1_cam_by_hand(trained):
    model, image = trained["model"], trained["images"][:1]
    features, _, _ = activations_and_gradients(model, image, "relu", "dog", 16, CLASS_NAMES)
    w, b = model.get_layer("predictions").get_weights()
    cam = np.einsum("nijk,k->nij", features, w[:, 0])  # without the ReLU
    logit = model.predict(image, verbose=0)[0, 0]
    assert cam.mean() + b[0] == pytest.approx(logit, abs=1e-4)


def test_04_2_cat_and_dog(trained):
    model, images = trained["model"], trained["images"]
    logits = model.predict(images, verbose=0)[:, 0]
    dog = images[logits > 0] if (logits > 0).any() else images
    size = activations_and_gradients(model, dog[:1], "relu", "dog", 16, CLASS_NAMES)[0].shape[1:3]
    dog_maps = grad_cam(model, dog, target="dog", size=size)
    cat_maps = grad_cam(model, dog, target="cat", size=size)
    assert np.minimum(dog_maps, cat_maps).max() == 0  # where one is hot, the other is zero


def test_04_3_which_layer(trained):
    model, images = trained["model"], trained["images"][:4]
    blocks = trained["settings"].blocks
    earlier = f"conv3_block{blocks[1]}_concat"
    fine, coarse = grad_cam(model, images, layer_name=earlier), grad_cam(model, images)
    sizes = [activations_and_gradients(model, images[:1], name, "dog", 16, CLASS_NAMES)[0].shape[1]
             for name in (earlier, "relu")]  # fmt: skip
    assert sizes[0] == 4 * sizes[1]  # two transitions finer
    for a, b in zip(fine, coarse, strict=True):  # the check as written: np.corrcoef of the maps
        r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert np.isnan(r) == (a.std() == 0 or b.std() == 0) and (np.isnan(r) or -1 <= r <= 1)
    for a, b in zip(fine, coarse, strict=True):  # Spearman's: Pearson's of the ranks
        assert rank_correlation(a, b) == pytest.approx(pearson_of_ranks(a, b), abs=1e-6)


def test_04_4_feature_reuse(trained):
    model, image = trained["model"], trained["images"][0]
    from_input = {}
    for block in range(1, len(trained["settings"].blocks) + 1):
        matrix = dense_connectivity(model, image, block=block)
        layers = matrix[:, :-1] if block < len(trained["settings"].blocks) else matrix
        from_input[block] = float(np.nanmean(layers[0]))  # the bottom row: the block input
    assert all(np.isfinite(v) and v > 0 for v in from_input.values())  # every block reads x0
    assert set(from_input) == set(range(1, len(trained["settings"].blocks) + 1))  # every block


def test_04_5_randomise_only_the_first_dense_block(trained):
    model, images = trained["model"], trained["images"][:4]
    original = grad_cam(model, images)
    working = copy_in_float32(model)
    keras.utils.set_random_seed(7)
    fresh = keras.models.clone_model(working)
    (layer_names,) = [names for step, names in randomization_steps(working) if step == "conv2"]
    for name in layer_names:
        working.get_layer(name).set_weights(fresh.get_layer(name).get_weights())
    changed = grad_cam(working, images, target=model.predict(images, verbose=0)[:, 0] > 0)
    correlations = [rank_correlation(a, b) for a, b in zip(original, changed, strict=True)]
    expected = [pearson_of_ranks(a, b) for a, b in zip(original, changed, strict=True)]
    assert correlations == pytest.approx(expected, abs=1e-6)
    assert min(correlations) < 1  # the maps changed


# --- 05 · what the growth rate costs and buys ---------------------------------------------


def test_05_1_predict_the_parameters():
    networks = {k: build_densenet(blocks=DENSENET169, growth_rate=k) for k in (12, 24)}
    counts = {k: n.count_params() for k, n in networks.items()}
    assert counts == {12: 1_854_985, 24: 7_174_033}
    assert 3.8 < counts[24] / counts[12] < 3.9

    def batch_norm(network):
        return sum(layer.count_params() for layer in network.layers
                   if isinstance(layer, keras.layers.BatchNormalization))  # fmt: skip

    assert batch_norm(networks[24]) == 2 * batch_norm(networks[12])
    others = {k: counts[k] - batch_norm(networks[k]) for k in counts}
    assert others[24] / others[12] == pytest.approx(4, rel=0.01)


def test_05_2_a_third_seed(runs):
    first = {(k, seed): runs(growth_rate=k, seed=seed) for k in (4, 8) for seed in (1, 2)}
    history = (first[4, 1] / "history.csv").read_text()
    third = {(k, 3): runs(growth_rate=k, seed=3) for k in (4, 8)}
    assert (first[4, 1] / "history.csv").read_text() == history  # seed 1 reused, not retrained
    folders = {**first, **third}
    assert len({run.name for run in folders.values()}) == 6
    assert all(
        run.name.endswith(f"-seed{seed}-data-out-quick") for (_, seed), run in folders.items()
    )
    mean = {k: np.mean([read_history(folders[k, s] / "history.csv")["val_accuracy"].max()
                        for s in (1, 2, 3)]) for k in (4, 8)}  # fmt: skip
    seeds = [read_history(folders[8, s] / "history.csv")["val_loss"].tolist() for s in (1, 2, 3)]
    assert len({tuple(losses) for losses in seeds}) == 3  # three runs, not one run thrice
    assert all(0 <= v <= 1 for v in mean.values())  # the mean of three seeds, to rank k by


def test_05_3_cost_per_point_of_accuracy_code_path(runs):
    """Needs a GPU to mean anything (the notebook says so); here the code path, 3 epochs."""
    history = read_history(runs(epochs=3) / "history.csv")
    per_minute = history["val_accuracy"].max() / (history["epoch_seconds"].sum() / 60)
    assert len(history["epoch_seconds"]) == 3 and per_minute > 0


def test_05_4_compression():
    blocks = (1, 2, 2, 1)
    for k in (12, 24, 32):
        counts = [build_densenet(blocks=blocks, growth_rate=k, compression=theta).count_params()
                  for theta in (0.5, 1.0)]  # fmt: skip
        assert counts[1] > counts[0]
    table = architecture_table(build_densenet(blocks=blocks, growth_rate=12, compression=1.0))
    transitions = [row for row in table if row["stage"].startswith("transition")]
    assert len(transitions) == 3
    assert all(row["output_channels"] == row["input_channels"] for row in transitions)


def test_05_5_without_the_bottleneck_the_formula():
    k, k0 = 12, 24
    for layer in (1, 6, 20):
        c = k0 + k * (layer - 1)
        x = keras.Input((8, 8, c))
        plain = keras.Model(x, composite_function(x, k, 3, "bn", "relu", "conv")).count_params()
        bottleneck = keras.Model(x, dense_layer(x, k, 4, "layer")).count_params()
        assert plain == 9 * c * k + 4 * c
        assert bottleneck == 4 * k * c + 36 * k * k + 4 * c + 16 * k


# --- 06 · pretrained ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """The quick mode's random stand-in for the ImageNet weights (no classifier), at 32 px."""
    folder = tmp_path_factory.mktemp("weights")
    return random_weights_file(folder / "densenet169_notop.weights.h5", input_shape=(32, 32, 3))


FINE_TUNE = {"blocks": DENSENET169, "growth_rate": 32, "image_size": 32, "batch_size": 32,
             "epochs": 1, "precision": "float32"}  # fmt: skip
"""Notebook 06's fine-tuning at 32 px, one epoch, in float32: this CPU's bfloat16, run eagerly
op by op, would be four times slower."""


def fine_tune(split_dir, runs, weights, rate, data=None, **changes):
    """Section 2 of notebook 06: fine-tune into the folder run_folder names."""
    settings = run_config(True, **{**FINE_TUNE, **changes}, learning_rate=rate, pretrained=weights)
    run = notebooks.run_folder(runs, settings, data=data or split_dir)
    with eagerly():
        metrics = training.train(split_dir, run, settings, verbose=0)
    return run, metrics


@pytest.fixture(scope="module")
def fine_tuned(synthetic_split, stand_in, tmp_path_factory):
    """Notebook 06's fine-tuning (rate 0.01) on the small generated split."""
    runs = tmp_path_factory.mktemp("runs06")
    run, metrics = fine_tune(synthetic_split, runs, stand_in, 0.01)
    return {"runs": runs, "run": run, "metrics": metrics}


def test_06_1_check_the_proof_the_edit_is_measured_not_undone(tmp_path):
    with_top = random_weights_file(tmp_path / "densenet169.weights.h5", with_top=True)
    ours = densenet169(input_shape=(224, 224, 3), num_classes=1000)
    load_imagenet_weights(ours, weights=with_top)
    reference = keras.applications.DenseNet169(weights=with_top, include_top=True)
    cat = notebooks.photo_path(notebooks.SHIPPED_PHOTO)
    pixels = keras.utils.img_to_array(keras.utils.load_img(cat, target_size=(224, 224)))[None]
    with eagerly():
        before = notebooks.imagenet_agreement(ours, reference, pixels)
        layer = ours.get_layer("conv3_block5_1_conv")
        layer.set_weights([1.01 * w for w in layer.get_weights()])
        after = notebooks.imagenet_agreement(ours, reference, pixels)  # section 1, second cell
    assert before["top5"]["ours"] == before["top5"]["keras.applications"]
    assert before["largest_difference"] < 1e-6
    assert after["largest_difference"] > 100 * max(before["largest_difference"], 1e-12)


def test_06_2_the_wrong_network(stand_in):
    wrong = densenet169(growth_rate=24, input_shape=(32, 32, 3))
    with pytest.raises(SettingError, match="conv1_conv"):
        load_imagenet_weights(wrong, stand_in)


def test_06_3_another_fine_tuning_rate_gets_its_own_run(fine_tuned, synthetic_split, stand_in):
    run, _ = fine_tune(synthetic_split, fine_tuned["runs"], stand_in, 0.1)
    assert run.parent == fine_tuned["run"].parent and run != fine_tuned["run"]  # side by side
    assert "-lr0.01-" in fine_tuned["run"].name and "-lr" not in run.name  # 0.1: the default
    first = [read_history(r / "history.csv")["val_accuracy"][0] for r in (run, fine_tuned["run"])]
    assert all(of_whole_images(a, synthetic_split, "val") for a in first)  # the learner reads them


def test_06_4_a_tenth_of_the_training_images(fine_tuned, synthetic_split, stand_in):
    fewer = notebooks.training_subset(synthetic_split.parent, 0.1)
    # This module's generated split is small: a tenth of it is less than one batch of 32 (the
    # notebook's quick split has over 300 training images, a tenth of them one batch).
    run, metrics = fine_tune(fewer, fine_tuned["runs"], stand_in, 0.01, data=fewer, batch_size=4)
    assert run.name.endswith(f"-data-{fewer.name}-quick") and "-b4-" in run.name
    assert metrics["images"] == fine_tuned["metrics"]["images"]  # the same test images
    _, rows = read_split(fewer / "splits", "train")
    assert len(rows) < len(read_split(synthetic_split, "train")[1])


def test_06_5_keras_io_recipe_head_first_then_all_but_batch_normalization(
    synthetic_split, stand_in
):
    network = densenet169(input_shape=(32, 32, 3))
    load_imagenet_weights(network, stand_in)
    model = training.AugmentedModel(network, augmentation(0))
    data = make_dataset(synthetic_split, "train", 32, 32, shuffle=True)

    def weights():
        return {layer.name: [w.copy() for w in layer.get_weights()] for layer in network.layers
                if layer.weights}  # fmt: skip

    def changed(before):
        return {
            name
            for name, ws in weights().items()
            if any(not np.array_equal(a, b) for a, b in zip(ws, before[name], strict=True))
        }

    with eagerly():
        for layer in network.layers:
            layer.trainable = layer.name == "predictions"
        training.compile_model(model, 0.01)
        start = weights()
        model.fit(data, epochs=1, verbose=0)
        assert changed(start) == {"predictions"}  # only the head learned
        for layer in network.layers:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        training.compile_model(model, 0.001)
        start = weights()
        model.fit(data, epochs=1, verbose=0)
    moved = changed(start)
    assert "conv2_block1_1_conv" in moved and "predictions" in moved
    batch_norms = {
        layer.name for layer in network.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }  # fmt: skip
    assert not moved & batch_norms  # statistics as loaded: inference mode
