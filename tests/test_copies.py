"""Copies: found while checking, kept together by the split, reported; the check's cache.

Everything runs on generated photos (``synthesize``, ``draw_animal``): exact copies under
other names, in other folders and in the other class; near copies resized, recompressed at
quality 60, cropped by 5 % and mirrored (``synth.make_copy``); distinct photos that must not
be merged. Where the stand-in differs from the Kaggle photos: the generated photos are all
alike (a grey background, an animal near the centre), harder to tell apart than real ones.
"""

import hashlib
import json
import os
import random
import time
import warnings
from collections import Counter

import numpy as np
import pytest

from densenet_tutorial.cli import main
from densenet_tutorial.data import (
    CLASS_NAMES,
    PARTS,
    copies,
    prepare,
    read_split,
    synthesize,
    verify,
)
from densenet_tutorial.data.files import read_csv
from densenet_tutorial.data.layouts import find_images
from densenet_tutorial.data.split import assign_parts, split_counts, split_key, write_split
from densenet_tutorial.data.synth import COPY_KINDS, draw_animal, encode, make_copy, plan_copies
from densenet_tutorial.errors import RunError

SIZE = (160, 120)  # generated photos: small, and still large enough for a 1/8-scale hash


def quiet_prepare(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images: 68/16/16"
        return prepare(workers=1, progress=False, **kwargs)


def expected_groups(layout, per_class):
    """The groups of copies ``synthesize(copies=True)`` makes, from ``plan_copies``."""
    linked = {}
    for copy, (_, _, original) in plan_copies(layout, per_class).items():
        group = linked.get(original, {original}) | linked.get(copy, {copy})
        for path in group:
            linked[path] = group
    return sorted({tuple(sorted(group)) for group in linked.values()})


def features(data):
    """``(hash, mirror hash, thumbnail)`` of a file's bytes, as the check computes them."""
    return verify.image_features(data, verify.reduced_image(data))


def photos_of(files):
    """``find_copies``' input for ``{name: bytes}``."""
    return [(name, "cat", hashlib.sha256(data).hexdigest(), features(data))
            for name, data in files.items()]  # fmt: skip


# --- finding copies ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["class-folders", "petimages", "flat"])
def test_copies_are_found_grouped_and_kept_in_one_part(layout, tmp_path):
    per_class = 30
    kinds = synthesize(tmp_path / "images", per_class, layout=layout, size=SIZE, copies=True)
    assert set(COPY_KINDS) <= set(kinds.values())
    split_dir = quiet_prepare(source=tmp_path / "images", out=tmp_path / "out")
    pairs = json.loads((tmp_path / "out" / "copies.json").read_text())["pairs"]
    groups = copies.copy_groups(pairs)
    assert [tuple(group) for group in groups] == expected_groups(layout, per_class)
    # Exact copies under another name, in another folder and in the other class.
    exact = {(pair["a"], pair["b"]) for pair in pairs if pair["kind"] == "exact"}
    relations = Counter(copies.relation(pair) for pair in pairs if pair["kind"] == "exact")
    # Each class's first photo is in a group of 4 (3 without a second folder): the photo, a
    # copy beside it, a copy in the other folder and a copy labelled as the other class.
    other_folder = layout == "class-folders"
    assert relations == Counter({"same folder": 2, "other folder": 4 if other_folder else 0,
                                 "other class": 6 if other_folder else 4})  # fmt: skip
    near_kinds = {kinds[path] for pair in pairs if pair["kind"] == "near"
                  for path in (pair["a"], pair["b"])}  # fmt: skip
    assert {"resized", "recompressed", "cropped", "mirrored"} <= near_kinds
    assert all({kinds[a], kinds[b]} <= {"copy", "jpeg"} for a, b in exact)
    # No group spans two parts; a group labelled both cat and dog is in training.
    part_of = {path: part for part in PARTS for path, _ in read_split(split_dir, part)[1]}
    labels = {path: label for part in PARTS for path, label in read_split(split_dir, part)[1]}
    for group in groups:
        assert len({part_of[path] for path in group}) == 1, group
        if len({labels[path] for path in group}) > 1:
            assert part_of[group[0]] == "train"
    meta = json.loads((split_dir / "meta.json").read_text())["copies"]
    assert meta["groups"] == len(groups) and meta["labelled_both"] == 2
    assert sum(meta["placed"].values()) == len(groups)
    assert meta["images"] == sum(len(group) for group in groups)


def test_near_copies_of_each_kind_are_found_and_distinct_photos_are_not():
    rng = np.random.default_rng(1)
    files = {}
    for n in range(12):
        image, mask = draw_animal(CLASS_NAMES[n % 2], rng)
        files[f"{n}.jpg"] = data = encode(image)
        for kind in COPY_KINDS[1:]:  # resized, recompressed, cropped, mirrored
            files[f"{n}-{kind}.jpg"] = make_copy(kind, image, mask, data)[0]
    for n in range(12, 200):  # distinct photos, none a copy of another
        files[f"{n}.jpg"] = encode(draw_animal(CLASS_NAMES[n % 2], rng)[0])
    pairs = copies.find_copies(photos_of(files))
    assert {pair["kind"] for pair in pairs} == {"near"}
    groups = copies.copy_groups(pairs)
    assert groups == sorted(
        sorted([f"{n}.jpg"] + [f"{n}-{kind}.jpg" for kind in COPY_KINDS[1:]]) for n in range(12)
    )
    for pair in pairs:
        assert pair["hamming"] <= copies.HASH_DISTANCE
        assert pair["rms"] <= copies.THUMBNAIL_RMS


def test_a_photo_and_its_mirror_image_have_mirrored_hashes():
    image, _ = draw_animal("cat", np.random.default_rng(2))
    hashes = copies.perceptual_hash(image)
    mirrored = copies.perceptual_hash(np.ascontiguousarray(image[:, ::-1]))
    assert mirrored == hashes[::-1]
    assert hashes[0] != hashes[1]


def test_pairs_are_found_without_comparing_in_python():
    """hash_candidates against a brute-force reference, on hashes with known distances."""
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, 300, dtype=np.uint64)
    hashes[100:110] = hashes[0] ^ np.uint64(0b1011)  # 3 bits from photo 0
    mirrors = rng.integers(0, 2**63, 300, dtype=np.uint64)
    mirrors[200] = hashes[5]  # photo 200 is photo 5 mirrored
    i, j, distance = copies.hash_candidates(hashes, mirrors, max_distance=6, block=7)
    expected = {
        (a, b): min(bin(int(hashes[a] ^ hashes[b])).count("1"),
                    bin(int(hashes[a] ^ mirrors[b])).count("1"),
                    bin(int(mirrors[a] ^ hashes[b])).count("1"))
        for a in range(300) for b in range(a + 1, 300)
    }  # fmt: skip
    expected = {pair: d for pair, d in expected.items() if d <= 6}
    found = dict(zip(zip(i.tolist(), j.tolist(), strict=True), distance.tolist(), strict=True))
    assert found == expected
    assert found[(5, 200)] == 0 and found[(0, 100)] == 3
    # Only photos of about the same brightness compared: the same pairs, less those too far apart.
    brightness = rng.uniform(0, 255, 300)
    brightness[100:110] = brightness[0] + np.repeat([39, 41], 5)  # 100-104 within reach of 0
    i, j, distance = copies.hash_candidates(hashes, mirrors, max_distance=6, block=7,
                                            brightness=brightness, window=40)  # fmt: skip
    within = {pair: d for pair, d in expected.items()
              if abs(brightness[pair[0]] - brightness[pair[1]]) <= 40}  # fmt: skip
    assert dict(zip(zip(i.tolist(), j.tolist(), strict=True), distance.tolist(), strict=True)) == (
        within
    )
    assert (0, 104) in within and (0, 105) not in within


# --- the split -------------------------------------------------------------------------------


def kaggle_like_files(per_class=12500):
    return [
        (f"{'test' if n % 5 == 4 else 'train'}/{label}s/{label}.{n}.jpg", label)
        for label in CLASS_NAMES
        for n in range(per_class)
    ]


def random_groups(files, seed=0):
    """Groups of 2 to 12 copies (about 9 % of the photos), some labelled both cat and dog."""
    rng = random.Random(seed)
    paths = [path for path, _ in files]
    rng.shuffle(paths)
    groups, start = [], 0
    while start < len(paths) // 11:
        size = rng.randint(2, 12)
        groups.append(paths[start : start + size])
        start += size
    return groups


def test_many_groups_of_varied_sizes_still_give_the_exact_counts(tmp_path):
    files = kaggle_like_files()
    groups = random_groups(files)
    labels = dict(files)
    mixed = [group for group in groups if len({labels[path] for path in group}) > 1]
    assert len(groups) > 100 and mixed and max(map(len, groups)) == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split_dir = write_split(files, tmp_path, tmp_path / "images", groups=groups)
    rows = {part: read_split(split_dir, part)[1] for part in PARTS}
    for part, per_class in (("train", 8500), ("val", 2000), ("test", 2000)):
        assert Counter(label for _, label in rows[part]) == {"cat": per_class, "dog": per_class}
    part_of = {path: part for part in PARTS for path, _ in rows[part]}
    assert set(part_of) == set(labels)
    assert all(len({part_of[path] for path in group}) == 1 for group in groups)
    assert all(part_of[group[0]] == "train" for group in mixed)
    placed = Counter(part_of[group[0]] for group in groups)
    assert placed["val"] and placed["test"]  # groups are held out too, whole
    meta = json.loads((split_dir / "meta.json").read_text())["copies"]
    assert meta == {"groups": len(groups), "images": sum(map(len, groups)), "labelled_both":
                    len(mixed), "placed": {part: placed[part] for part in PARTS}}  # fmt: skip
    manifests = {name: (split_dir / name).read_bytes() for name in os.listdir(split_dir)}
    again = write_split(files, tmp_path / "again", tmp_path / "images", groups=groups[::-1])
    assert {name: (again / name).read_bytes() for name in os.listdir(again)} == manifests


def test_without_copies_the_split_is_the_one_by_hash():
    """No groups: validation takes the first images of each class in the order of the hash of
    ``seed/path``, test the next ones, training the rest (the split before copies were
    looked for)."""
    files = kaggle_like_files(300)
    counts = split_counts({"cat": 300, "dog": 300}, val_per_class=40, test_per_class=40)
    expected = {part: [] for part in PARTS}
    for label in CLASS_NAMES:
        ordered = sorted((p for p, lab in files if lab == label), key=lambda p: split_key(p, 7))
        for part, chosen in zip(PARTS, (ordered[80:], ordered[:40], ordered[40:80]), strict=True):
            expected[part] += [(path, label) for path in chosen]
    assert assign_parts(files, counts, seed=7) == {p: sorted(v) for p, v in expected.items()}


def test_groups_too_large_to_hold_out_are_a_clear_error():
    files = kaggle_like_files(10)
    cats = [path for path, label in files if label == "cat"]
    with pytest.warns(UserWarning, match="68/16/16"):
        counts = split_counts({"cat": 10, "dog": 10}, val_per_class=2, test_per_class=2)
    with pytest.raises(RunError, match="exactly 2 and 2 cat images while keeping copies"):
        assign_parts(files, counts, groups=[cats[:7], cats[7:]])


# --- the report ------------------------------------------------------------------------------


def test_prepare_prints_what_it_found(tmp_path, capsys):
    synthesize(tmp_path / "images", 30, size=SIZE, copies=True, broken=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = ["prepare", "--source", str(tmp_path / "images"), "--out", str(tmp_path / "out")]
        assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == "Copies: 8 groups hold 22 of the 80 checked photos (14 more than one of each)."
    )
    assert lines[1].endswith("12 pairs: 2 same folder, 4 other folder, 6 other class")
    assert lines[1].startswith("  exact copies (the same bytes)")
    assert lines[2].startswith("  near copies") and ": 10 pairs: 10 same folder" in lines[2]
    assert "2 groups are labelled both cat and dog, kept in training" in lines[3]
    assert "no validation or test photo has a copy in another part" in lines[4]
    assert lines[5].startswith("Split written to")


def test_no_copies_is_said_plainly(tmp_path):
    synthesize(tmp_path / "images", 10, size=SIZE)
    quiet_prepare(source=tmp_path / "images", out=tmp_path / "out")
    text = copies.describe_copies(tmp_path / "out")
    assert text == "Copies: none among the 20 checked photos (no exact or near copies)."


# --- the check's cache -----------------------------------------------------------------------


@pytest.fixture
def decoded(monkeypatch):
    """The paths ``check_files`` decodes, in order."""
    paths = []
    check_files = verify.check_files
    monkeypatch.setattr(
        verify, "check_files", lambda todo, *a: paths.extend(todo) or check_files(todo, *a)
    )
    return paths


def test_photos_extracted_again_are_not_decoded_again(tmp_path, decoded, monkeypatch):
    """A new Colab runtime: kagglehub extracts the same photos again, with new modification
    times. The verdicts, hashes and copies are found again without decoding anything."""
    source, out = tmp_path / "images", tmp_path / "out"
    synthesize(source, 12, size=SIZE, copies=True, broken=True)
    first_split = quiet_prepare(source=source, out=out)
    first = {name: (out / name).read_bytes() for name in ("rejected.csv", "copies.json")}
    manifests = {p: (first_split / f"{p}.csv").read_bytes() for p in PARTS}
    decoded.clear()
    later = time.time_ns() + 10**9
    for path in source.rglob("*"):
        os.utime(path, ns=(later, later))
    monkeypatch.setattr(copies, "find_copies", lambda photos: pytest.fail("compared again"))
    split_dir = quiet_prepare(source=source, out=out)
    assert decoded == []
    assert {name: (out / name).read_bytes() for name in first} == first
    assert {p: (split_dir / f"{p}.csv").read_bytes() for p in PARTS} == manifests


def test_a_file_whose_bytes_changed_is_decoded_again(tmp_path, decoded):
    source, out = tmp_path / "images", tmp_path / "out"
    synthesize(source, 5, layout="petimages", size=SIZE)
    root, files = find_images(source, out)
    assert len(verify.verify_images(root, files, out, workers=1, progress=False)) == 10
    changed = root / "PetImages" / "Cat" / "2.jpg"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # the same size, other bytes
    changed.write_bytes(bytes(data))
    moved = root / "PetImages" / "Dog" / "4.jpg"
    moved.rename(moved.with_name("40.jpg"))  # a new name, the same bytes
    decoded.clear()
    root, files = find_images(source, out)
    verify.verify_images(root, files, out, workers=1, progress=False)
    assert decoded == [str(changed)]
    rows = {row["path"]: row for row in read_csv(out / "checked.csv")}
    assert rows["PetImages/Cat/2.jpg"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert "PetImages/Dog/40.jpg" in rows and "PetImages/Dog/4.jpg" not in rows


def test_a_cache_of_the_older_kind_is_checked_again(tmp_path, decoded):
    source, out = tmp_path / "images", tmp_path / "out"
    synthesize(source, 3, layout="petimages", size=SIZE)
    root, files = find_images(source, out)
    out.mkdir()
    (out / "checked.csv").write_text(
        "path,size,mtime_ns,problem\n"
        + "".join(
            f"{p},{(root / p).stat().st_size},{(root / p).stat().st_mtime_ns},\n" for p, _ in files
        )  # fmt: skip
    )
    verify.verify_images(root, files, out, workers=1, progress=False)
    assert sorted(decoded) == sorted(str(root / path) for path, _ in files)
    assert tuple(read_csv(out / "checked.csv")[0]) == verify.CACHE_FIELDS
