"""Layout readers, layout detection, input errors, decoded arrays and the preprocessing record.

Every fixture here is built in ``tmp_path`` from tiny generated images (a few pixels each);
nothing is copied from the real data.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgederm.data import HAM10000_CLASSES, LAYOUTS, detect_layout, load_dataset
from edgederm.data import arrays as arrays_mod
from edgederm.data.arrays import load_arrays
from edgederm.errors import EdgeDermError
from edgederm.paths import home
from edgederm.preprocessing import Preprocessing

SMALL = Preprocessing(input_size=(16, 24))


# --- fixture builders ------------------------------------------------------------------------
def _img(path: Path, size=(12, 10), color=(200, 100, 50)) -> Path:
    """A tiny solid-colour RGB image (``size`` is PIL's (width, height))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _mask(path: Path, size=(12, 10), left_fraction=0.5) -> Path:
    """A 0/255 single-channel PNG whose left part is lesion."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    a = np.zeros((h, w), np.uint8)
    a[:, : int(w * left_fraction)] = 255
    Image.fromarray(a, mode="L").save(path)
    return path


def _write_csv(path: Path, header, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# image_id, lesion_id, dx, split -- two lesions with two images each, 3 classes, all splits
DERM7_ROWS = [
    ("ISIC_0000001", "HAM_01", "mel", "train"),
    ("ISIC_0000002", "HAM_01", "mel", "train"),
    ("ISIC_0000003", "HAM_02", "nv", "train"),
    ("ISIC_0000004", "HAM_03", "nv", "val"),
    ("ISIC_0000005", "HAM_04", "bcc", "test"),
    ("ISIC_0000006", "HAM_04", "bcc", "test"),
]


def make_derm7(root: Path, rows=DERM7_ROWS, with_split=True) -> Path:
    for r in rows:
        _img(root / "images" / f"{r[0]}.jpg")
    header = ["image_id", "lesion_id", "dx"] + (["split"] if with_split else [])
    _write_csv(root / "labels.csv", header, [r if with_split else r[:3] for r in rows])
    return root


def derm7_rows_without_split(n_lesions=12):
    """2 images per lesion, lesions alternate mel/nv: enough for a made 3-way split."""
    rows = []
    for li in range(n_lesions):
        dx = ("mel", "nv")[li % 2]
        for k in range(2):
            rows.append((f"ISIC_{li:05d}{k:02d}", f"HAM_{li:04d}", dx, ""))
    return rows


def make_lesionseg(root: Path, n=6, with_split=True) -> Path:
    splits = ["train", "train", "train", "train", "val", "test"]
    for i in range(n):
        _img(root / "images" / f"ISIC_{i:07d}.jpg")
        _mask(root / "masks" / f"ISIC_{i:07d}.png")
    if with_split:
        _write_csv(root / "split.csv", ["id", "split"],
                   [(f"ISIC_{i:07d}", splits[i % len(splits)]) for i in range(n)])
    return root


HAM_ROWS = [  # lesion_id,image_id,dx,dx_type,age,sex,localization
    ("HAM_0000118", "ISIC_0027419", "bkl", "histo", "80.0", "male", "scalp"),
    ("HAM_0000118", "ISIC_0025030", "bkl", "histo", "80.0", "male", "scalp"),
    ("HAM_0002730", "ISIC_0026769", "bkl", "histo", "80.0", "male", "scalp"),
    ("HAM_0002730", "ISIC_0025661", "bkl", "histo", "80.0", "male", "scalp"),
    ("HAM_0001466", "ISIC_0031633", "mel", "histo", "75.0", "male", "ear"),
    ("HAM_0002761", "ISIC_0029176", "nv", "follow_up", "60.0", "female", "face"),
    ("HAM_0005132", "ISIC_0025837", "nv", "follow_up", "70.0", "female", "back"),
    ("HAM_0001396", "ISIC_0025276", "nv", "consensus", "55.0", "female", "trunk"),
    ("HAM_0004234", "ISIC_0029396", "df", "histo", "85.0", "female", "chest"),
    ("HAM_0001949", "ISIC_0025767", "akiec", "histo", "70.0", "male", "face"),
    ("HAM_0007207", "ISIC_0031326", "vasc", "consensus", "65.0", "male", "back"),
    ("HAM_0001601", "ISIC_0025915", "bcc", "histo", "50.0", "male", "back"),
]
HAM_HEADER = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


def make_ham10000(root: Path, rows=HAM_ROWS) -> Path:
    for i, r in enumerate(rows):
        part = 1 if i % 2 == 0 else 2
        _img(root / f"HAM10000_images_part_{part}" / f"{r[1]}.jpg")
    _write_csv(root / "HAM10000_metadata.csv", HAM_HEADER, rows)
    return root


def make_isic_task1(root: Path, n=6) -> Path:
    for i in range(1, n + 1):
        _img(root / "ISIC2018_Task1-2_Training_Input" / f"ISIC_{i:07d}.jpg")
        _mask(root / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_{i:07d}_segmentation.png")
    return root


def make_folder(root: Path, classes=("benign", "malignant"), per_class=4, splits=None) -> Path:
    bases = [root / s for s in splits] if splits else [root]
    for base in bases:
        for c in classes:
            for i in range(per_class):
                _img(base / c / f"{base.name}_{c}_{i}.png")
    return root


# --- derm7 ---------------------------------------------------------------------------------------
def test_derm7_with_split_column(tmp_path):
    root = make_derm7(tmp_path / "derm7")
    ds = load_dataset(root)
    assert (ds.layout, ds.task, ds.name) == ("derm7", "classification", "derm7")
    assert ds.classes == HAM10000_CLASSES
    assert ds.split_source == "given"
    assert [s.id for s in ds.samples] == [r[0] for r in DERM7_ROWS]
    assert [ds.classes[s.label] for s in ds.samples] == [r[2] for r in DERM7_ROWS]
    assert [s.group for s in ds.samples] == [r[1] for r in DERM7_ROWS]
    assert [s.split for s in ds.samples] == [r[3] for r in DERM7_ROWS]
    assert all(s.image == root / "images" / f"{s.id}.jpg" and s.image.exists() for s in ds.samples)
    assert all(s.mask is None for s in ds.samples)
    assert ds.counts() == {"train": {"mel": 2, "nv": 1}, "val": {"nv": 1}, "test": {"bcc": 2}}
    assert [s.id for s in ds.split("test").samples] == ["ISIC_0000005", "ISIC_0000006"]


def test_derm7_without_split_column_gets_grouped_split(tmp_path):
    rows = derm7_rows_without_split()
    root = make_derm7(tmp_path / "derm7", rows, with_split=False)
    ds = load_dataset(root, seed=3)
    assert ds.layout == "derm7"
    assert ds.split_source.startswith("made")
    assert {s.split for s in ds.samples} == {"train", "val", "test"}
    by_lesion = {}
    for s in ds.samples:
        by_lesion.setdefault(s.group, set()).add(s.split)
    assert all(len(v) == 1 for v in by_lesion.values()), by_lesion
    again = load_dataset(root, seed=3)
    assert [s.split for s in again.samples] == [s.split for s in ds.samples]


def test_derm7_bad_split_value_names_file_and_line(tmp_path):
    rows = list(DERM7_ROWS)
    rows[2] = ("ISIC_0000003", "HAM_02", "nv", "training")
    root = make_derm7(tmp_path / "derm7", rows)
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    msg = str(e.value)
    assert str(root / "labels.csv") in msg and "line 4" in msg and "'training'" in msg
    assert "\n" not in msg


# --- lesionseg -----------------------------------------------------------------------------------
def test_lesionseg_reader(tmp_path):
    root = make_lesionseg(tmp_path / "lesionseg")
    ds = load_dataset(root)
    assert (ds.layout, ds.task) == ("lesionseg", "segmentation")
    assert ds.classes == ("background", "lesion")
    assert ds.split_source == "given"
    assert len(ds.samples) == 6
    for s in ds.samples:
        assert s.image == root / "images" / f"{s.id}.jpg"
        assert s.mask == root / "masks" / f"{s.id}.png"
        assert s.label is None and s.group == s.id
    assert [s.split for s in ds.samples] == ["train"] * 4 + ["val", "test"]
    assert ds.counts() == {"train": {"images": 4}, "val": {"images": 1}, "test": {"images": 1}}


def test_lesionseg_without_split_csv_gets_made_split(tmp_path):
    root = make_lesionseg(tmp_path / "lesionseg", n=10, with_split=False)
    ds = load_dataset(root)
    assert ds.split_source.startswith("made")
    assert {s.split for s in ds.samples} <= {"train", "val", "test"}
    assert all(s.split for s in ds.samples)
    assert sorted(s.id for s in ds.samples) == [f"ISIC_{i:07d}" for i in range(10)]


# --- HAM10000 ------------------------------------------------------------------------------------
def test_ham10000_reader_finds_images_in_both_parts(tmp_path):
    root = make_ham10000(tmp_path / "ham")
    ds = load_dataset(root)
    assert (ds.layout, ds.task) == ("ham10000", "classification")
    assert ds.classes == HAM10000_CLASSES
    assert [s.id for s in ds.samples] == [r[1] for r in HAM_ROWS]
    assert [ds.classes[s.label] for s in ds.samples] == [r[2] for r in HAM_ROWS]
    assert [s.group for s in ds.samples] == [r[0] for r in HAM_ROWS]
    parts = {s.image.parent.name for s in ds.samples}
    assert parts == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert all(s.image.exists() for s in ds.samples)
    # No split in the metadata: a lesion-grouped one is made.
    assert ds.split_source.startswith("made")
    lesion_splits = {}
    for s in ds.samples:
        lesion_splits.setdefault(s.group, set()).add(s.split)
    assert all(len(v) == 1 for v in lesion_splits.values())


def test_ham10000_missing_image_names_csv_line(tmp_path):
    root = make_ham10000(tmp_path / "ham")
    (root / "HAM10000_images_part_2" / f"{HAM_ROWS[3][1]}.jpg").unlink()
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    msg = str(e.value)
    assert "HAM10000_metadata.csv line 5" in msg and HAM_ROWS[3][1] in msg and "\n" not in msg


# --- ISIC Task 1 ---------------------------------------------------------------------------------
def test_isic_task1_reader_pairs_images_with_masks(tmp_path):
    root = make_isic_task1(tmp_path / "isic")
    ds = load_dataset(root)
    assert (ds.layout, ds.task) == ("isic_task1", "segmentation")
    assert [s.id for s in ds.samples] == [f"ISIC_{i:07d}" for i in range(1, 7)]
    for s in ds.samples:
        assert s.image.parent.name == "ISIC2018_Task1-2_Training_Input"
        assert s.mask.name == f"{s.id}_segmentation.png"
        assert s.mask.parent.name == "ISIC2018_Task1_Training_GroundTruth"
    assert all(s.split in ("train", "val", "test") for s in ds.samples)


def test_isic_task1_image_without_mask(tmp_path):
    root = make_isic_task1(tmp_path / "isic")
    lonely = _img(root / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000099.jpg")
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    msg = str(e.value)
    assert str(lonely) in msg and "no mask" in msg and "\n" not in msg


# --- class-per-folder ----------------------------------------------------------------------------
def test_folder_reader_plain(tmp_path):
    root = make_folder(tmp_path / "mine", classes=("nevus", "melanoma", "bcc"), per_class=4)
    (root / "nevus" / "notes.txt").write_text("not an image")
    ds = load_dataset(root)
    assert (ds.layout, ds.task, ds.name) == ("folder", "classification", "mine")
    assert ds.classes == ("bcc", "melanoma", "nevus")  # sorted
    assert len(ds.samples) == 12
    for s in ds.samples:
        assert s.image.parent.name == ds.classes[s.label]
        assert s.group == s.id
    assert ds.split_source.startswith("made")
    assert {s.split for s in ds.samples} == {"train", "val", "test"}


def test_folder_reader_with_split_subfolders(tmp_path):
    root = make_folder(tmp_path / "tree", classes=("a", "b"), per_class=2, splits=("train", "val", "test"))
    _img(root / "train" / "c" / "only_in_train.jpg")  # a class present in one split only
    ds = load_dataset(root)
    assert ds.layout == "folder"
    assert ds.split_source == "given"
    assert ds.classes == ("a", "b", "c")
    for s in ds.samples:
        assert s.image.parent.parent.name == s.split
        assert s.image.parent.name == ds.classes[s.label]
    assert ds.counts() == {"train": {"a": 2, "b": 2, "c": 1}, "val": {"a": 2, "b": 2},
                           "test": {"a": 2, "b": 2}}


# --- detection -----------------------------------------------------------------------------------
@pytest.mark.parametrize("builder, expected", [
    (lambda r: make_derm7(r), "derm7"),
    (lambda r: make_derm7(r, derm7_rows_without_split(), with_split=False), "derm7"),
    (lambda r: make_lesionseg(r), "lesionseg"),
    (lambda r: make_ham10000(r), "ham10000"),
    (lambda r: make_isic_task1(r), "isic_task1"),
    (lambda r: make_folder(r), "folder"),
    (lambda r: make_folder(r, splits=("train", "val", "test")), "folder"),
], ids=["derm7", "derm7-nosplit", "lesionseg", "ham10000", "isic_task1", "folder", "folder-splits"])
def test_detect_layout(tmp_path, builder, expected):
    root = builder(tmp_path / "data")
    assert detect_layout(root) == expected
    assert load_dataset(root).layout == expected


def test_all_layouts_registered():
    assert set(LAYOUTS.names()) >= {"derm7", "lesionseg", "ham10000", "isic_task1", "folder"}


def test_explicit_layout_overrides_detection_and_unknown_name_fails(tmp_path):
    root = make_derm7(tmp_path / "derm7")
    assert load_dataset(root, layout="derm7").layout == "derm7"
    with pytest.raises(EdgeDermError, match="did you mean 'derm7'"):
        load_dataset(root, layout="derm8")


def test_synthetic_root_loads(synthetic_root):
    cls = load_dataset(synthetic_root / "derm7")
    seg = load_dataset(synthetic_root / "lesionseg")
    assert cls.layout == "derm7" and len(cls.samples) == 7 * 8 * 2
    assert {s.split for s in cls.samples} == {"train", "val", "test"}
    assert seg.layout == "lesionseg" and len(seg.samples) == 48


# --- bad inputs ----------------------------------------------------------------------------------
def _one_line(e) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg, msg
    return msg


def test_missing_data_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(EdgeDermError) as e:
        load_dataset(missing)
    assert str(missing) in _one_line(e) and "does not exist" in str(e.value)


def test_unknown_class_in_csv_names_file_and_line(tmp_path):
    rows = list(DERM7_ROWS)
    rows[1] = ("ISIC_0000002", "HAM_01", "xyz", "train")
    root = make_derm7(tmp_path / "derm7", rows)
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    msg = _one_line(e)
    assert str(root / "labels.csv") in msg and "line 3" in msg and "'xyz'" in msg


def test_unknown_class_in_ham_metadata(tmp_path):
    rows = list(HAM_ROWS)
    rows[6] = rows[6][:2] + ("xyz",) + rows[6][3:]
    root = make_ham10000(tmp_path / "ham", rows)
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    msg = _one_line(e)
    assert "HAM10000_metadata.csv line 8" in msg and "'xyz'" in msg


def test_csv_missing_column_names_file_and_column(tmp_path):
    root = tmp_path / "derm7"
    for r in DERM7_ROWS:
        _img(root / "images" / f"{r[0]}.jpg")
    _write_csv(root / "labels.csv", ["image_id", "lesion_id", "split"], [(r[0], r[1], r[3]) for r in DERM7_ROWS])
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    msg = _one_line(e)
    assert str(root / "labels.csv") in msg and "lacks column(s) dx:" in msg


def test_csv_with_header_only_fails_cleanly(tmp_path):
    root = tmp_path / "derm7"
    (root / "images").mkdir(parents=True)
    _write_csv(root / "labels.csv", ["image_id", "lesion_id", "dx", "split"], [])
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    assert str(root / "labels.csv") in _one_line(e)


def test_lesionseg_split_csv_missing_column(tmp_path):
    root = make_lesionseg(tmp_path / "lesionseg", with_split=False)
    _write_csv(root / "split.csv", ["id", "fold"], [("ISIC_0000000", "train")])
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    msg = _one_line(e)
    assert str(root / "split.csv") in msg and "split" in msg


def test_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgeDermError) as e:
        load_dataset(empty)
    assert str(empty) in _one_line(e) and "no known data layout" in str(e.value)


def test_folder_with_only_empty_class_dirs(tmp_path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    assert str(root) in _one_line(e)


def test_class_folders_without_images(tmp_path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "a" / "readme.txt").write_text("x")
    with pytest.raises(EdgeDermError) as e:
        load_dataset(root)
    assert "no images found" in _one_line(e) and str(root) in str(e.value)


def test_empty_derm7_folder_is_not_a_derm7(tmp_path):
    root = tmp_path / "derm7"
    (root / "images").mkdir(parents=True)  # no labels.csv
    with pytest.raises(EdgeDermError):
        load_dataset(root)


def test_corrupt_image_fails_in_load_arrays_naming_file(tmp_path):
    root = make_derm7(tmp_path / "derm7")
    bad = root / "images" / "ISIC_0000004.jpg"
    bad.write_bytes(b"this is not a jpeg \x00\x01\x02" * 10)
    ds = load_dataset(root)  # reading the index does not decode images
    with pytest.raises(EdgeDermError) as e:
        load_arrays(ds, SMALL, cache=False)
    msg = _one_line(e)
    assert str(bad) in msg and "corrupt" in msg


def test_truncated_image_fails_naming_file(tmp_path):
    root = make_derm7(tmp_path / "derm7")
    bad = root / "images" / "ISIC_0000002.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad, quality=95)
    bad.write_bytes(bad.read_bytes()[:400])
    with pytest.raises(EdgeDermError) as e:
        load_arrays(load_dataset(root), SMALL, cache=False)
    assert str(bad) in _one_line(e)


def test_missing_image_fails_in_load_arrays_naming_file(tmp_path):
    root = make_derm7(tmp_path / "derm7")
    gone = root / "images" / "ISIC_0000005.jpg"
    gone.unlink()
    with pytest.raises(EdgeDermError) as e:
        load_arrays(load_dataset(root), SMALL, cache=False)
    assert str(gone) in _one_line(e) and "missing" in str(e.value)


def test_corrupt_mask_fails_naming_file(tmp_path):
    root = make_lesionseg(tmp_path / "lesionseg")
    bad = root / "masks" / "ISIC_0000003.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(EdgeDermError) as e:
        load_arrays(load_dataset(root), SMALL, cache=False)
    assert str(bad) in _one_line(e)


# --- LesionDataset helpers -----------------------------------------------------------------------
def test_split_errors(tmp_path):
    ds = load_dataset(make_derm7(tmp_path / "derm7"))
    with pytest.raises(EdgeDermError, match="unknown split"):
        ds.split("validation")
    only_train = ds.split("train")
    with pytest.raises(EdgeDermError, match="empty"):
        only_train.split("test")


def test_subset_is_stratified_and_seeded(synthetic_root):
    ds = load_dataset(synthetic_root / "derm7")
    sub = ds.subset(28, seed=1)
    assert len(sub.samples) == 28
    assert sorted(set(sub.labels)) == list(range(7))
    assert [s.id for s in ds.subset(28, seed=1).samples] == [s.id for s in sub.samples]
    assert ds.subset(10_000) is ds


# --- load_arrays ---------------------------------------------------------------------------------
def test_load_arrays_classification(synthetic_root):
    ds = load_dataset(synthetic_root / "derm7").split("val")
    arr = load_arrays(ds, SMALL, cache=False)
    n = len(ds.samples)
    assert len(arr) == n and arr.ids == [s.id for s in ds.samples]
    assert arr.images.shape == (n, 16, 24, 3) and arr.images.dtype == np.uint8
    assert arr.targets.shape == (n,) and arr.targets.dtype == np.int64
    assert arr.targets.tolist() == ds.labels
    assert arr.images.std() > 5  # real pixels, not an empty buffer


def test_load_arrays_segmentation_masks_are_0_1(synthetic_root):
    ds = load_dataset(synthetic_root / "lesionseg").split("train")
    arr = load_arrays(ds, SMALL, cache=False)
    n = len(ds.samples)
    assert arr.images.shape == (n, 16, 24, 3) and arr.images.dtype == np.uint8
    assert arr.targets.shape == (n, 16, 24) and arr.targets.dtype == np.uint8
    assert set(np.unique(arr.targets).tolist()) == {0, 1}
    frac = arr.targets.reshape(n, -1).mean(1)
    assert (frac > 0).all() and (frac < 1).all()  # every synthetic image has a lesion and skin


def test_load_arrays_mask_geometry(tmp_path):
    root = make_lesionseg(tmp_path / "lesionseg")  # masks: left half lesion (12x10 px)
    arr = load_arrays(load_dataset(root), Preprocessing(input_size=(10, 24)), cache=False)
    expected = np.zeros((10, 24), np.uint8)
    expected[:, :12] = 1
    assert (arr.targets == expected).all()


def test_load_arrays_cache_hit(tmp_path, monkeypatch):
    root = make_derm7(tmp_path / "derm7")
    ds = load_dataset(root)
    key = arrays_mod._cache_key(ds, SMALL)
    img_file = home() / "arrays" / f"{key}.images.npy"
    tgt_file = home() / "arrays" / f"{key}.targets.npy"
    assert not img_file.exists()
    first = load_arrays(ds, SMALL)
    assert img_file.exists() and tgt_file.exists()
    assert img_file.parent == Path(os.environ["EDGEDERM_HOME"]) / "arrays"

    def boom(*a, **k):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(arrays_mod, "_decode", boom)
    second = load_arrays(ds, SMALL)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.targets, second.targets)
    assert second.ids == first.ids
    np.testing.assert_array_equal(np.load(img_file), first.images)
    # cache=False and a different size both decode (the patched decoder proves it).
    with pytest.raises(AssertionError, match="decoded again"):
        load_arrays(ds, SMALL, cache=False)
    with pytest.raises(AssertionError, match="decoded again"):
        load_arrays(ds, SMALL.replace(input_size=(16, 16)))
    with pytest.raises(AssertionError, match="decoded again"):
        load_arrays(ds, SMALL.replace(resize="shorter_side_center_crop"))


def test_load_arrays_cache_does_not_serve_stale_labels(tmp_path):
    rows = list(DERM7_ROWS)
    root = make_derm7(tmp_path / "derm7", rows)
    first = load_arrays(load_dataset(root), SMALL)
    rows[0] = ("ISIC_0000001", "HAM_01", "nv", "train")  # a label corrected in labels.csv
    make_derm7(root, rows)
    ds = load_dataset(root)
    second = load_arrays(ds, SMALL)
    assert second.targets.tolist() == ds.labels
    assert second.targets[0] == HAM10000_CLASSES.index("nv") != first.targets[0]
    np.testing.assert_array_equal(first.images, second.images)


# --- Preprocessing ---------------------------------------------------------------------------------
def _bands(h=40, w=100) -> Image.Image:
    """Red | green | blue vertical bands (25 | 50 | 25 % of the width)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 4, 0] = 255
    a[:, w // 4: 3 * w // 4, 1] = 255
    a[:, 3 * w // 4:, 2] = 255
    return Image.fromarray(a)


@pytest.mark.parametrize("resize", ["stretch", "shorter_side_center_crop"])
@pytest.mark.parametrize("src", [(100, 40), (40, 100), (37, 53), (8, 8)])
def test_resize_modes_give_input_size(resize, src):
    prep = Preprocessing(input_size=(20, 30), resize=resize)
    out = prep.resize_image(Image.new("RGB", src, (10, 20, 30)))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    mask = prep.resize_mask(Image.new("L", src, 255))
    assert mask.shape == (20, 30) and mask.dtype == np.uint8 and (mask == 1).all()


def test_stretch_keeps_everything_center_crop_keeps_the_middle():
    img = _bands()  # 100 x 40
    stretched = Preprocessing(input_size=(20, 20), resize="stretch").resize_image(img)
    cropped = Preprocessing(input_size=(20, 20), resize="shorter_side_center_crop").resize_image(img)
    # stretch: all three bands survive, squeezed
    assert stretched[:, 0, 0].min() > 200 and stretched[:, -1, 2].min() > 200
    # crop: shorter side 40 -> 20 makes the image 50 x 20; the middle 20 columns are green only
    assert (cropped[..., 1] > 200).all()
    assert (cropped[..., 0] < 60).all() and (cropped[..., 2] < 60).all()


def test_center_crop_mask_matches_image_geometry():
    a = np.zeros((40, 100), np.uint8)
    a[:, 30:70] = 255
    prep = Preprocessing(input_size=(20, 20), resize="shorter_side_center_crop")
    assert (prep.resize_mask(Image.fromarray(a)) == 1).all()
    stretch = Preprocessing(input_size=(20, 20)).resize_mask(Image.fromarray(a))
    assert stretch[:, 0].max() == 0 and stretch[:, 10].min() == 1


def test_resize_image_converts_grey_and_rgba_to_rgb():
    prep = Preprocessing(input_size=(8, 8))
    assert prep.resize_image(Image.new("L", (9, 9), 7)).shape == (8, 8, 3)
    assert prep.resize_image(Image.new("RGBA", (9, 9), (1, 2, 3, 4))).shape == (8, 8, 3)


def test_normalize_matches_hand_computation():
    prep = Preprocessing()  # ImageNet mean/std, scale 1/255, NCHW
    x = prep.normalize(np.array([[[0, 128, 255]]], np.uint8))  # one pixel, HWC
    assert x.shape == (3, 1, 1) and x.dtype == np.float32
    # (0/255 - 0.485)/0.229, (128/255 - 0.456)/0.224, (255/255 - 0.406)/0.225
    expected = [-2.1179039, 0.2051821, 2.6400000]
    np.testing.assert_allclose(x[:, 0, 0], expected, atol=1e-5)


def test_normalize_custom_mean_std_scale():
    prep = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 2.0), scale=1 / 255, layout="NHWC")
    x = prep.normalize(np.array([[[255, 0, 51]]], np.uint8))
    # (1-0.5)/0.5 = 1, (0-0.5)/0.25 = -2, (0.2-0.5)/2 = -0.15
    np.testing.assert_allclose(x[0, 0], [1.0, -2.0, -0.15], atol=1e-6)


def test_normalize_layouts_nchw_vs_nhwc():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    nchw = Preprocessing(layout="NCHW").normalize(pixels)
    nhwc = Preprocessing(layout="NHWC").normalize(pixels)
    assert nchw.shape == (2, 3, 4, 5) and nhwc.shape == (2, 4, 5, 3)
    assert nchw.flags["C_CONTIGUOUS"] and nchw.dtype == np.float32
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    # single image without batch dim
    assert Preprocessing().normalize(pixels[0]).shape == (3, 4, 5)


def test_call_is_resize_then_normalize():
    prep = Preprocessing(input_size=(8, 12))
    img = Image.new("RGB", (30, 20), (255, 0, 0))
    x = prep(img)
    assert x.shape == (3, 8, 12)
    np.testing.assert_allclose(x[0], (1 - 0.485) / 0.229, atol=1e-5)
    np.testing.assert_allclose(x[1], (0 - 0.456) / 0.224, atol=1e-5)


def test_preprocessing_dict_round_trip():
    prep = Preprocessing(input_size=(144, 192), resize="shorter_side_center_crop", interpolation="bicubic",
                         mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), layout="NHWC")
    d = prep.to_dict()
    assert d["input_size"] == [144, 192] and d["mean"] == [0.5, 0.4, 0.3]
    back = Preprocessing.from_dict(json.loads(json.dumps(d)))
    assert back == prep
    assert back.input_size == (144, 192) and isinstance(back.mean, tuple)
    assert Preprocessing.from_dict({**d, "unknown_future_key": 1}) == prep
    assert prep.replace(layout="NCHW").layout == "NCHW" and prep.replace(layout="NCHW") != prep


@pytest.mark.parametrize("bad", [{"resize": "squash"}, {"input_size": (4, 100)}, {"input_size": (10,)}])
def test_preprocessing_rejects_bad_values(bad):
    with pytest.raises(EdgeDermError):
        Preprocessing(**bad)
