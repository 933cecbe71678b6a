"""The data steps: layouts and labels, kagglehub (real calls), verification, split, pipeline.

Everything runs on generated images (``densenet_tutorial.data.synth``) in temporary
folders. kagglehub is driven for real: from a cache folder laid out as kagglehub lays it
out (success) and through an unreachable proxy (failure, whatever the CI's network).
"""

import hashlib
import json
import os
import random
import shutil
import stat
import warnings
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from densenet_tutorial.cli import main
from densenet_tutorial.data import (
    CLASS_NAMES,
    DEFAULT_HANDLE,
    LAYOUTS,
    make_dataset,
    prepare,
    read_split,
    synthesize,
    verify,
)
from densenet_tutorial.data import download as kaggle
from densenet_tutorial.data.files import (
    discard,
    read_csv,
    recover,
    write_atomically,
    write_then_rename,
)
from densenet_tutorial.data.layouts import find_images, label_of
from densenet_tutorial.data.split import PARTS, assign_parts, split_counts, write_split
from densenet_tutorial.data.synth import BROKEN_KINDS

SMALL = (64, 48)  # generated image size for the tests: fast to write and to decode


def tree_hash(root):
    """A hash of every path, permission bit and byte under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        digest.update(f"{path.relative_to(root)} {path.stat().st_mode}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def read_only(root):
    """Remove the write permission of every file and folder under ``root``."""
    for path in [*Path(root).rglob("*"), Path(root)]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def quiet_prepare(**kwargs):
    """``prepare`` on a small set, without the "fewer than 25,000 images" warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(workers=1, progress=False, **kwargs)


def split_rows(split_dir):
    return {part: read_split(split_dir, part)[1] for part in PARTS}


# --- layouts and labels ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, label",
    [
        ("train/cats/cat.1.jpg", "cat"),
        ("test/dogs/dog.12499.jpg", "dog"),
        ("PetImages/Cat/666.jpg", "cat"),
        ("PetImages/Dog/Thumbs.db", "dog"),
        ("train/train/dog.7.jpg", "dog"),
        ("train/cat.0.jpg", "cat"),
        ("Cats/dog.3.jpg", "cat"),  # the folder wins over the file name
        ("test/test/1.jpg", None),
        ("train/Thumbs.db", None),
        ("sampleSubmission.csv", None),
        ("catalogue/1.jpg", None),
    ],
)
def test_label_comes_from_folder_or_file_name(path, label):
    assert label_of(path) == label


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_with_broken_files(layout, tmp_path):
    source = tmp_path / "source"
    written = synthesize(source, 8, layout=layout, broken=True, size=SMALL)
    before = tree_hash(source)
    split_dir = quiet_prepare(source=source, out=tmp_path / "out")
    assert tree_hash(source) == before  # nothing written, moved or deleted in the source

    labelled = {path: kind for path, kind in written.items() if label_of(path)}
    expected_valid = {path for path, kind in labelled.items() if kind not in BROKEN_KINDS}
    expected_rejected = {path for path, kind in labelled.items() if kind in BROKEN_KINDS}
    rows = [row for part in split_rows(split_dir).values() for row in part]
    assert {path for path, _ in rows} == expected_valid
    assert all(label == label_of(path) for path, label in rows)
    rejected = read_csv(tmp_path / "out" / "rejected.csv")
    assert {row["path"] for row in rejected} == expected_rejected
    reasons = {labelled[row["path"]]: row["reason"] for row in rejected}
    assert reasons["empty"] == "empty file (0 bytes)"
    assert reasons["truncated"].startswith("cannot be decoded")
    assert reasons["not-an-image"].startswith("not a JPEG, PNG, GIF or BMP")
    assert "extraneous bytes" in reasons["corrupt-data"]  # libjpeg's own warning
    if layout in ("class-folders", "petimages"):
        assert reasons["thumbs-db"].startswith("not a JPEG")


def test_unknown_layout_says_what_it_found(tmp_path):
    (tmp_path / "photos").mkdir()
    for n in range(3):
        (tmp_path / "photos" / f"IMG_{n}.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"No cat or dog images.*3 files.*\.jpg 3.*photos"):
        find_images(tmp_path, tmp_path / "out")


def test_missing_empty_and_one_class_folders_are_clear_errors(tmp_path, capsys):
    assert main(["prepare", "--source", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["prepare", "--source", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "is empty" in capsys.readouterr().err
    synthesize(tmp_path / "pets", 3, layout="petimages", size=SMALL)
    shutil.rmtree(tmp_path / "pets" / "PetImages" / "Dog")
    for source in (tmp_path / "pets", tmp_path / "pets" / "PetImages" / "Cat"):
        assert main(["prepare", "--source", str(source), "--out", str(tmp_path / "o")]) == 2
        error = capsys.readouterr().err
        assert "cat images only" in error and "Traceback" not in error


def test_read_only_source_is_left_untouched(tmp_path):
    source = tmp_path / "source"
    synthesize(source, 6, layout="competition", broken=True, size=SMALL)  # an archive to unpack
    read_only(source)
    before = tree_hash(source)
    quiet_prepare(source=source, out=tmp_path / "out")
    assert tree_hash(source) == before
    assert (tmp_path / "out" / "unpacked" / "train").is_dir()


# --- kagglehub, for real -----------------------------------------------------------------


@pytest.fixture
def offline_kaggle(tmp_path, monkeypatch):
    """No Kaggle credentials, an empty kagglehub cache and a proxy that refuses connections."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kaggle/kaggle.json
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return tmp_path / "kagglehub"


def test_default_handle_is_read_from_the_kagglehub_cache(offline_kaggle, tmp_path):
    owner_slug, version = DEFAULT_HANDLE.split("/versions/")
    cached = offline_kaggle / "datasets" / owner_slug / "versions" / version
    synthesize(cached, 8, layout="class-folders", size=SMALL)
    (offline_kaggle / "datasets" / owner_slug / f"{version}.complete").touch()
    split_dir = quiet_prepare(out=tmp_path / "out")
    meta = json.loads((split_dir / "meta.json").read_text())
    assert meta["handle"] == DEFAULT_HANDLE
    assert Path(meta["source_root"]) == cached.resolve()
    assert sum(meta["counts"][part]["total"] for part in PARTS) == 16


def test_no_network_names_the_handles_and_suggests_source(offline_kaggle, tmp_path, capsys):
    with pytest.raises(RuntimeError) as error:
        prepare(out=tmp_path / "out")
    message = str(error.value)
    assert DEFAULT_HANDLE in message and kaggle.FALLBACK_HANDLE in message
    assert "unreachable" in message and "--source DIR" in message
    assert main(["prepare", "--out", str(tmp_path / "out")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_competition_without_token_says_how_to_get_one(offline_kaggle, tmp_path):
    with pytest.raises(RuntimeError, match="needs a Kaggle API token.*KAGGLE_USERNAME"):
        prepare(handle=kaggle.COMPETITION, out=tmp_path / "out")


def test_refused_competition_says_to_accept_the_rules():
    import requests

    response = requests.Response()
    response.status_code = 403
    error = requests.HTTPError("403 Client Error", response=response)
    message = kaggle.explain_failure("dogs-vs-cats", error)
    assert "HTTP 403" in message and "competitions/dogs-vs-cats/rules" in message
    response.status_code = 401
    assert "HTTP 401" in kaggle.explain_failure("someone/private-cats", error)


def test_unversioned_handle_offline_suggests_pinning_a_version(offline_kaggle, tmp_path):
    with pytest.raises(RuntimeError, match="pin one, OWNER/SLUG/versions/N"):
        prepare(handle="salader/dogs-vs-cats", out=tmp_path / "out")


# --- verification ------------------------------------------------------------------------


def test_verdicts_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    source, out = tmp_path / "source", tmp_path / "out"
    synthesize(source, 5, layout="petimages", size=SMALL)
    root, files = find_images(source, out)
    assert len(verify.verify_images(root, files, out, workers=1, progress=False)) == 10
    checked = []
    check_files = verify.check_files
    monkeypatch.setattr(
        verify, "check_files", lambda paths, *a: checked.extend(paths) or check_files(paths, *a)
    )
    verify.verify_images(root, files, out, workers=1, progress=False)
    assert checked == []  # unchanged files are not decoded again
    changed = root / "PetImages" / "Dog" / "3.jpg"
    changed.write_bytes(changed.read_bytes()[:100])  # now truncated
    valid = verify.verify_images(root, files, out, workers=1, progress=False)
    assert checked == [str(changed)]
    assert len(valid) == 9


def test_accepted_files_decode_in_tensorflow_without_warnings(synthetic_split, capfd):
    capfd.readouterr()
    for part in PARTS:
        for images, _ in make_dataset(synthetic_split, part, image_size=32, batch_size=16):
            assert images.shape[-1] == 3  # grayscale, CMYK and PNG-in-.jpg reach us as RGB
    output = capfd.readouterr()
    assert "Corrupt JPEG" not in output.err and "Premature end" not in output.err


# --- the split ---------------------------------------------------------------------------


def kaggle_like_files(per_class=12500):
    """``(path, label)`` of the default handle: 10,000 + 2,500 per class in train/ and test/."""
    return [
        (f"{'test' if n % 5 == 4 else 'train'}/{label}s/{label}.{n}.jpg", label)
        for label in CLASS_NAMES
        for n in range(per_class)
    ]


def test_25000_images_give_exactly_17000_4000_4000(tmp_path):
    files = kaggle_like_files()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fewer images" warning at exactly 25,000
        split_dir = write_split(files, tmp_path, tmp_path / "images", seed=0)
    rows = split_rows(split_dir)
    assert {part: len(rows[part]) for part in PARTS} == {"train": 17000, "val": 4000, "test": 4000}
    for part, per_class in (("train", 8500), ("val", 2000), ("test", 2000)):
        labels = [label for _, label in rows[part]]
        assert labels.count("cat") == labels.count("dog") == per_class
    paths = [set(path for path, _ in rows[part]) for part in PARTS]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])  # disjoint
    assert set.union(*paths) == {path for path, _ in files}  # complete
    meta = json.loads((split_dir / "meta.json").read_text())
    assert meta["counts"]["val"] == {"total": 4000, "cat": 2000, "dog": 2000}


def test_split_ignores_listing_order_and_location():
    files = kaggle_like_files(300)
    shuffled = random.Random(1).sample(files, len(files))
    counts = split_counts({"cat": 300, "dog": 300}, val_per_class=40, test_per_class=40)
    assert assign_parts(files, counts, seed=3) == assign_parts(shuffled, counts, seed=3)
    assert assign_parts(files, counts, seed=3) != assign_parts(files, counts, seed=4)


def test_reruns_and_relocated_sources_write_identical_manifests(tmp_path):
    synthesize(tmp_path / "a", 10, layout="flat", size=SMALL)
    first = quiet_prepare(source=tmp_path / "a", out=tmp_path / "out")
    manifests = {name: (first / name).read_bytes() for name in os.listdir(first)}
    second = quiet_prepare(source=tmp_path / "a", out=tmp_path / "out")
    assert {name: (second / name).read_bytes() for name in os.listdir(second)} == manifests
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    moved = quiet_prepare(source=tmp_path / "elsewhere" / "b", out=tmp_path / "out2")
    for part in PARTS:
        assert (moved / f"{part}.csv").read_bytes() == manifests[f"{part}.csv"]


def test_fewer_images_keep_68_16_16_with_a_warning():
    with pytest.warns(UserWarning, match="68/16/16"):
        counts = split_counts({"cat": 1000, "dog": 500})
    assert counts["val"] == counts["test"] == {"cat": 160, "dog": 80}
    assert counts["train"] == {"cat": 680, "dog": 340}


def test_counts_can_be_set():
    counts = split_counts({"cat": 100, "dog": 100}, val_per_class=10, test_per_class=5)
    assert counts == {"train": {"cat": 85, "dog": 85}, "val": {"cat": 10, "dog": 10},
                      "test": {"cat": 5, "dog": 5}}  # fmt: skip


def test_too_few_images_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="Too few images to split: 3 cat, 10 dog"):
        split_counts({"cat": 3, "dog": 10})
    synthesize(tmp_path / "s", 2, layout="petimages", size=SMALL)
    assert main(["prepare", "--source", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 2
    assert "Too few images" in capsys.readouterr().err


def test_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / "train.csv"
    write_atomically(target, "old\n")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, "new\n")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["train.csv"]


class DriveCalls:
    """What Google Drive would put in its trash: each ``os.replace`` over an existing file
    and each ``os.unlink``, with the size the file had (a stand-in for Drive's mount, which
    moves a replaced or deleted file to the trash)."""

    def __init__(self, monkeypatch):
        self.trashed = []
        for name in ("replace", "unlink"):
            real = getattr(os, name)

            def call(*args, real=real, name=name):
                gone = args[1] if name == "replace" else args[0]
                if os.path.exists(gone):
                    self.trashed.append((name, os.path.basename(gone), os.path.getsize(gone)))
                return real(*args)

            monkeypatch.setattr(os, name, call)


def test_a_replaced_file_is_emptied_before_drive_could_trash_it(tmp_path, monkeypatch):
    target = tmp_path / "best.keras"
    write_then_rename(target, lambda path: path.write_bytes(b"old" * 1000))
    calls = DriveCalls(monkeypatch)
    write_then_rename(target, lambda path: path.write_bytes(b"new" * 1000))
    assert target.read_bytes() == b"new" * 1000 and os.listdir(tmp_path) == ["best.keras"]
    assert calls.trashed == [("unlink", ".best.old.keras", 0)]  # renamed aside, then emptied
    discard(target)
    assert calls.trashed[-1] == ("unlink", "best.keras", 0) and not target.exists()


def test_a_write_cut_off_between_its_renames_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "best.keras"
    write_then_rename(target, lambda path: path.write_bytes(b"old"))
    real, renames = os.replace, []

    def cut_off_at_the_second(*args):
        renames.append(args)
        if len(renames) == 2:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(os, "replace", cut_off_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        write_then_rename(target, lambda path: path.write_bytes(b"new"))
    monkeypatch.setattr(os, "replace", real)
    assert not target.exists() and (tmp_path / ".best.old.keras").read_bytes() == b"old"
    assert recover(target).read_bytes() == b"old"  # what resume does
    write_then_rename(target, lambda path: path.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["best.keras"]


def test_a_manifest_that_disagrees_with_meta_is_refused(synthetic_split, tmp_path):
    copy = shutil.copytree(synthetic_split, tmp_path / "splits")
    lines = (copy / "val.csv").read_text().splitlines(keepends=True)
    (copy / "val.csv").write_text("".join(lines[:-1]))
    with pytest.raises(RuntimeError, match="meta.json says"):
        read_split(copy, "val")


# --- the pipeline ------------------------------------------------------------------------


def as_arrays(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(images), np.concatenate(labels)


def test_batches_have_the_promised_shapes_dtypes_and_labels(synthetic_split):
    _, rows = read_split(synthetic_split, "val")
    images, labels = as_arrays(make_dataset(synthetic_split, "val", image_size=40, batch_size=5))
    assert images.shape == (len(rows), 40, 40, 3) and images.dtype == np.uint8
    assert images.max() > 1
    assert labels.dtype == np.float32
    assert labels.tolist() == [CLASS_NAMES.index(label) for _, label in rows]  # split's order


def test_val_and_test_are_identical_every_epoch(synthetic_split):
    dataset = make_dataset(synthetic_split, "test", image_size=32, batch_size=4)
    first, second = as_arrays(dataset), as_arrays(dataset)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_training_order_is_reshuffled_every_epoch_and_images_stay_uint8(synthetic_split):
    keras.utils.set_random_seed(0)
    plain = as_arrays(make_dataset(synthetic_split, "train", 32, 8))
    dataset = make_dataset(synthetic_split, "train", 32, 8, shuffle=True)
    first, second = as_arrays(dataset), as_arrays(dataset)
    assert first[1].tolist() != second[1].tolist()  # reshuffled each epoch
    assert sorted(first[1]) == sorted(plain[1])
    # Shuffling keeps the images as they are: no augmentation in tf.data.
    assert first[0].dtype == np.uint8
    assert sorted(map(bytes, first[0])) == sorted(map(bytes, plain[0]))


def test_images_are_cached_after_the_first_epoch(tmp_path):
    synthesize(tmp_path / "source", 6, layout="petimages", size=SMALL)
    split_dir = quiet_prepare(source=tmp_path / "source", out=tmp_path / "out")
    dataset = make_dataset(split_dir, "train", image_size=32, batch_size=4)
    first = as_arrays(dataset)
    shutil.rmtree(tmp_path / "source")  # our own generated copy: the second epoch needs no file
    np.testing.assert_array_equal(as_arrays(dataset)[0], first[0])
    with pytest.raises(tf.errors.NotFoundError):
        as_arrays(make_dataset(split_dir, "train", image_size=32, batch_size=4))


def test_red_stays_red_and_moved_images_are_found(tmp_path):
    source = tmp_path / "source"
    for label, bgr in (("cat", (0, 0, 255)), ("dog", (255, 0, 0))):  # red cats, blue dogs
        (source / f"{label}s").mkdir(parents=True)
        for n in range(6):
            image = np.full((30, 40, 3), bgr, np.uint8)
            # A small black mark, in a place of its own: otherwise the six are copies of each
            # other, which the split keeps together (and could not share out 4 / 1 / 1).
            image[2 + 4 * n : 5 + 4 * n, 2 + 6 * n : 5 + 6 * n] = 0
            cv2.imwrite(str(source / f"{label}s" / f"{n}.jpg"), image)
    split_dir = quiet_prepare(source=source, out=tmp_path / "out")
    shutil.move(source, tmp_path / "moved")
    images, labels = as_arrays(make_dataset(split_dir, "train", 16, 8, root=tmp_path / "moved"))
    mean_rgb = {name: images[labels == i].mean((0, 1, 2)) for i, name in enumerate(CLASS_NAMES)}
    assert mean_rgb["cat"][0] > 250 and mean_rgb["cat"][1:].max() < 5
    assert mean_rgb["dog"][2] > 250 and mean_rgb["dog"][:2].max() < 5


def test_synthetic_classes_differ_only_in_the_animal_as_documented(tmp_path):
    """Warm round cats, cool angular dogs; the background says nothing about the class."""
    from densenet_tutorial.data.synth import draw_animal, mask_path

    rng = np.random.default_rng(0)
    drawn = {label: [draw_animal(label, rng) for _ in range(60)] for label in CLASS_NAMES}

    def red_minus_blue(pixels):
        return float(pixels[:, 2].mean() - pixels[:, 0].mean())  # BGR

    for label, sign in (("cat", 1), ("dog", -1)):
        animals = [red_minus_blue(image[mask > 0]) for image, mask in drawn[label]]
        assert min(sign * value for value in animals) > 50  # warm cats, cool dogs
    backgrounds = {label: np.array([red_minus_blue(image[mask == 0]) for image, mask in images])
                   for label, images in drawn.items()}  # fmt: skip
    spread = max(values.std() for values in backgrounds.values())
    assert abs(backgrounds["cat"].mean() - backgrounds["dog"].mean()) < spread / 2
    for _, mask in drawn["cat"] + drawn["dog"]:
        assert 0.02 < (mask > 0).mean() < 0.6  # an animal, not the whole photo
    files = synthesize(tmp_path / "images", 3, size=SMALL, masks=tmp_path / "masks")
    for path in files:
        mask = cv2.imread(str(mask_path(tmp_path / "masks", path)), cv2.IMREAD_GRAYSCALE)
        image = cv2.imread(str(tmp_path / "images" / path))
        assert mask.shape == image.shape[:2] and set(np.unique(mask)) <= {0, 255}


def test_a_split_and_a_run_cut_off_between_renames_are_found_again(synthetic_split, tmp_path):
    """``recover`` where the files are looked up, not where they are written: a runtime cut
    off between the two renames of ``write_then_rename`` leaves ``.NAME.old`` only."""
    from densenet_tutorial.errors import SettingError
    from densenet_tutorial.run_folder import check_run_folder

    split = shutil.copytree(synthetic_split, tmp_path / "splits")
    rows = read_split(split, "train")
    for name in ("meta.json", "train.csv"):
        (split / name).rename(split / f".{Path(name).stem}.old{Path(name).suffix}")
    assert read_split(split, "train") == rows and (split / "meta.json").exists()
    run = tmp_path / "run"
    write_atomically(run / "config.json", json.dumps({"settings": {"epochs": 2}}))
    (run / "config.json").rename(run / ".config.old.json")
    assert check_run_folder(run, {"epochs": 2}) is True  # resumed, the settings compared
    with pytest.raises(SettingError, match="epochs: 2 -> 3"):
        check_run_folder(run, {"epochs": 3})
