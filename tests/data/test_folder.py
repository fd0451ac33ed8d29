"""Image-folder trees, as directories and as tar archives."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fishermask.data import load_dataset
from fishermask.errors import DataError

CLASSES = ("ant", "cat", "dog")
TRAIN_VALUES = [100, 200, 10, 11, 12, 30]  # ant: y.jpeg, z.jpg; cat: a, b, c.PNG; dog: 1
TRAIN_LABELS = [0, 0, 1, 1, 1, 2]
TEST_VALUES = [150, 15, 34, 35]  # ant: q; cat: q; dog: o, p
TEST_LABELS = [0, 1, 2, 2]


def values(x: torch.Tensor) -> list[int]:
    """The (near-)constant value of each image, rounded (JPEG is lossy)."""
    return [round(v) for v in x.float().mean(dim=(1, 2, 3)).tolist()]


def check_tiny(ds, channels: int = 1, size: tuple[int, int] = (4, 6)) -> None:
    assert ds.classes == CLASSES
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.image_shape == (channels, *size)
    assert ds.y_train.tolist() == TRAIN_LABELS and ds.y_test.tolist() == TEST_LABELS
    assert all(abs(a - b) <= 2 for a, b in zip(values(ds.x_train), TRAIN_VALUES, strict=True))
    assert values(ds.x_test) == TEST_VALUES


def test_directory_tree(tmp_path, write_tree):
    root = write_tree(tmp_path / "tiny")
    ds = load_dataset(root, cache_dir=tmp_path / "cache")
    check_tiny(ds)
    assert ds.name == "tiny"
    assert values(ds.x_train)[2:] == TRAIN_VALUES[2:]  # the PNGs are exact


@pytest.mark.parametrize("prefix", ["", "tiny/", "./"])
@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar"])
def test_tar_archive(tmp_path, write_tar, tree_members, prefix, suffix):
    archive = write_tar(tmp_path / f"tiny{suffix}", tree_members(prefix=prefix))
    ds = load_dataset(str(archive), cache_dir=tmp_path / "cache")
    check_tiny(ds)
    assert ds.name == "tiny"


def test_tar_without_directory_entries(tmp_path, write_tar, tree_members):
    members = {k: v for k, v in tree_members(prefix="top/").items() if v is not None}
    check_tiny(load_dataset(write_tar(tmp_path / "t.tgz", members), cache_dir=tmp_path / "c"))


def test_leading_folder_in_directory(tmp_path, write_tree):
    write_tree(tmp_path / "outer" / "inner")
    check_tiny(load_dataset(tmp_path / "outer", cache_dir=tmp_path / "cache"))


def test_rgb_tree_has_three_channels(tmp_path, write_tree):
    ds = load_dataset(write_tree(tmp_path / "t", mode="RGB"), cache_dir=tmp_path / "c")
    check_tiny(ds, channels=3)


def test_mixed_modes_become_rgb(tmp_path, write_tree, encode):
    root = write_tree(tmp_path / "t")
    (root / "train" / "dog" / "1.png").write_bytes(encode(30, mode="RGB"))
    (root / "test" / "cat" / "q.png").write_bytes(encode(15, mode="RGBA"))
    ds = load_dataset(root, cache_dir=tmp_path / "c")
    check_tiny(ds, channels=3)
    assert (ds.x_train[2] == 10).all()  # a grey image repeated over the three channels


def test_palette_and_la_modes(tmp_path, write_tree, encode):
    root = write_tree(tmp_path / "t")
    (root / "train" / "dog" / "1.png").write_bytes(encode(30, mode="LA"))
    (root / "test" / "cat" / "q.png").write_bytes(encode(15, mode="1"))
    ds = load_dataset(root, cache_dir=tmp_path / "c")
    assert ds.image_shape == (1, 4, 6)
    assert values(ds.x_train)[-1] == 30 and set(ds.x_test[1].unique().tolist()) <= {0, 255}


def test_image_size_resizes_everything(tmp_path, write_tree, encode):
    root = write_tree(tmp_path / "t")
    (root / "train" / "dog" / "1.png").write_bytes(encode(30, size=(9, 7)))
    ds = load_dataset(root, image_size=(3, 5), cache_dir=tmp_path / "c")
    check_tiny(ds, size=(3, 5))


def test_mixed_sizes_without_image_size(tmp_path, write_tree, encode):
    root = write_tree(tmp_path / "t")
    (root / "train" / "cat" / "b.png").write_bytes(encode(11, size=(9, 7)))
    with pytest.raises(DataError) as err:
        load_dataset(root, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert "b.png" in msg and "9x7" in msg and "4x6" in msg
    # the fix, written out at the size most images have (it said "image_size=(H, W)" first)
    assert msg.endswith(
        "resize every image to one size: --image-size 4x6 (Python: image_size=(4, 6); "
        "data: {image_size: [4, 6]} in a config file)."
    ), msg


def test_corrupt_image_in_directory(tmp_path, write_tree):
    root = write_tree(tmp_path / "t")
    (root / "train" / "cat" / "b.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"cannot decode image .*train/cat/b\.png"):
        load_dataset(root, cache_dir=tmp_path / "c")


def test_every_undecodable_image_is_named_in_the_one_refusal(tmp_path, write_tree):
    # three broken files took three runs, each decoding the whole folder again
    root = write_tree(tmp_path / "t")
    for rel in ("train/cat/b.png", "train/dog/x.jpg", "test/ant/z.png"):
        (root / rel).write_bytes(b"not an image")
    with pytest.raises(DataError) as err:
        load_dataset(root, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert msg.startswith(f"cannot decode image {root}/train/cat/b.png: "), msg
    assert msg.endswith(
        f"; replace or delete the file, and the 2 more that cannot be decoded either: "
        f"{root}/train/dog/x.jpg, {root}/test/ant/z.png."
    ), msg


def test_truncated_image_in_archive(tmp_path, write_tar, tree_members):
    members = tree_members(prefix="top/")
    members["top/test/dog/o.png"] = members["top/test/dog/o.png"][:30]
    archive = write_tar(tmp_path / "t.tar.gz", members)
    with pytest.raises(DataError) as err:
        load_dataset(archive, cache_dir=tmp_path / "c")
    assert "'top/test/dog/o.png' in archive" in str(err.value) and "t.tar.gz" in str(err.value)


def test_truncated_archive(tmp_path, write_tar, tree_members):
    archive = write_tar(tmp_path / "t.tar.gz", tree_members())
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot read archive"):
        load_dataset(archive, cache_dir=tmp_path / "c")


def test_empty_class_folder(tmp_path, write_tree):
    root = write_tree(tmp_path / "t")
    (root / "train" / "emu").mkdir()
    (root / "train" / "emu" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*train/emu has no images"):
        load_dataset(root, cache_dir=tmp_path / "c")


def test_empty_class_folder_in_archive(tmp_path, write_tar, tree_members):
    members = tree_members()
    members["test/emu"] = None
    with pytest.raises(DataError, match=r"class folder 'test/emu' in archive .* has no images"):
        load_dataset(write_tar(tmp_path / "t.tar", members), cache_dir=tmp_path / "c")


def test_class_sets_differ(tmp_path, write_tree, tiny_spec):
    spec = {**tiny_spec, "test": {"ant": {"q.png": 1}, "cow": {"q.png": 2}}}
    with pytest.raises(DataError) as err:
        load_dataset(write_tree(tmp_path / "t", spec), cache_dir=tmp_path / "c")
    assert "only in train ['cat', 'dog']" in str(err.value)
    assert "only in test ['cow']" in str(err.value)


@pytest.mark.parametrize("missing", ["train", "test"])
def test_missing_split(tmp_path, write_tree, missing, tiny_spec):
    spec = {k: v for k, v in tiny_spec.items() if k != missing}
    with pytest.raises(DataError, match=f"no '{missing}' split in"):
        load_dataset(write_tree(tmp_path / "t", spec), cache_dir=tmp_path / "c")


def test_missing_split_in_archive(tmp_path, write_tar, tree_members):
    members = {k: v for k, v in tree_members(prefix="x/").items() if "/test/" not in k}
    with pytest.raises(DataError, match="no 'test' split in"):
        load_dataset(write_tar(tmp_path / "t.tgz", members), cache_dir=tmp_path / "c")


def test_image_outside_class_folder(tmp_path, write_tree, encode):
    root = write_tree(tmp_path / "t")
    (root / "train" / "stray.png").write_bytes(encode(1))
    with pytest.raises(DataError, match="stray.png is not inside a class folder"):
        load_dataset(root, cache_dir=tmp_path / "c")


def test_nested_image_is_an_error(tmp_path, write_tree, encode):
    root = write_tree(tmp_path / "t")
    (root / "train" / "cat" / "more").mkdir()
    (root / "train" / "cat" / "more" / "x.png").write_bytes(encode(1))
    with pytest.raises(DataError, match="nested below its class folder"):
        load_dataset(root, cache_dir=tmp_path / "c")


def test_unsupported_image_type_is_an_error(tmp_path, write_tree):
    root = write_tree(tmp_path / "t")
    (root / "train" / "cat" / "x.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match=r"x\.bmp has unsupported type \.bmp"):
        load_dataset(root, cache_dir=tmp_path / "c")


def test_unsupported_images_are_counted_not_met_one_run_at_a_time(tmp_path, write_tree):
    # a folder of .webp photos was refused one file per run, with no word of the others
    root = write_tree(tmp_path / "t")
    for name in ("a.webp", "b.webp", "c.tif"):
        (root / "train" / "cat" / name).write_bytes(b"x")
    (root / "test" / "dog" / "d.webp").write_bytes(b"x")
    with pytest.raises(DataError) as err:
        load_dataset(root, cache_dir=tmp_path / "c")
    assert str(err.value) == (
        f"image {root}/test/dog/d.webp has unsupported type .webp, and so have 3 more files "
        "(3 .webp, 1 .tif in all); convert them to .png or .jpg (read: .png, .jpg, .jpeg)."
    )


def test_hidden_and_other_files_are_skipped(tmp_path, write_tree):
    root = write_tree(tmp_path / "t")
    (root / "train" / "cat" / "._a.png").write_bytes(b"AppleDouble junk")
    (root / "train" / ".cache").mkdir()
    (root / "train" / "cat" / "labels.csv").write_text("a,b")
    (root / "README.txt").write_text("hello")
    check_tiny(load_dataset(root, cache_dir=tmp_path / "c"))


def test_extra_split_folder_warns(tmp_path, write_tree, tiny_spec):
    root = write_tree(tmp_path / "t", {**tiny_spec, "val": {"cat": {"v.png": 1}}})
    with pytest.warns(UserWarning, match="ignoring folder 'val'"):
        check_tiny(load_dataset(root, cache_dir=tmp_path / "c"))


def _png16(values: np.ndarray) -> bytes:
    """A real 16-bit grey PNG (PIL writes a uint16 array as mode I;16)."""
    buf = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("archive", [False, True])
def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, write_tree, write_tar, archive):
    # a dark 16-bit image used to come out all white: PIL's convert("L") clips at 255
    img = np.array([[0, 257, 1000, 30000, 65535, 12850]] * 4)  # [H=4, W=6] 16-bit values
    raw = _png16(img)
    assert Image.open(io.BytesIO(raw)).mode.startswith("I")  # really 16-bit on disk
    root = write_tree(tmp_path / "t")
    (root / "train" / "dog" / "1.png").write_bytes(raw)
    source = root
    if archive:
        members = {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }
        source = write_tar(tmp_path / "t.tar", members)
    ds = load_dataset(source, cache_dir=tmp_path / "c")
    dog = ds.x_train[-1, 0]  # [H, W]; dog is the last class, one training image
    expected = torch.from_numpy(np.rint(img / 257.0).astype(np.uint8))
    assert torch.equal(dog, expected)
    assert dog[0].tolist() == [0, 1, 4, 117, 255, 50]


@pytest.mark.parametrize("pixels", [200, 100])  # over Pillow's limit / over twice it
def test_an_image_over_pillows_pixel_limit_is_one_clean_error(tmp_path, monkeypatch, pixels):
    import warnings

    from fishermask.data.images import decode_image

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"big\.png: too large to decode safely \(256 pixels"):
            decode_image(path, "big.png", None)


def test_class_folders_without_splits_say_how_to_split(tmp_path, write_tree, tiny_spec):
    # the usual folder of one's own images: <root>/<class>/*, no train/ and test/
    root = write_tree(tmp_path, {"mine": tiny_spec["train"]}) / "mine"
    with pytest.raises(DataError) as err:
        load_dataset(root, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert "holds 3 class folders of images ('ant', 'cat', 'dog') but no train/ and test/" in msg
    assert f"{root}/train/<class>/" in msg and f"{root}/test/<class>/" in msg
    assert "\n" not in msg


def test_class_folders_inside_the_one_folder_of_a_directory(tmp_path, write_tree, tiny_spec):
    # data/pets/<class>/*.jpg passed as data: it said "cannot recognise the data set format"
    root = write_tree(tmp_path / "data", {"pets": tiny_spec["train"]})
    with pytest.raises(DataError) as err:
        load_dataset(root, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert msg.startswith(f"{root}/pets holds 3 class folders of images ('ant', 'cat', 'dog')")
    assert f"{root}/pets/train/<class>/" in msg


@pytest.mark.parametrize("top", ["", "mine/"])  # `tar cf mine.tar mine/` has the folder
def test_class_folders_without_splits_in_archive(tmp_path, write_tar, tree_members, tiny_spec, top):
    # inside one folder it said "not an image-folder tree", as if that were another format
    members = {
        top + k.removeprefix("train/"): v
        for k, v in tree_members({"train": tiny_spec["train"]}, prefix="").items()
    }
    with pytest.raises(DataError, match=r"holds 3 class folders of images \('ant', 'cat', 'dog'\)"):
        load_dataset(write_tar(tmp_path / "mine.tar", members), cache_dir=tmp_path / "c")


def test_missing_test_split_says_how_to_make_one(tmp_path, write_tree, tiny_spec):
    spec = {k: v for k, v in tiny_spec.items() if k != "test"}
    with pytest.raises(DataError, match=r"move a held-out part of each class's images .* to "):
        load_dataset(write_tree(tmp_path / "t", spec), cache_dir=tmp_path / "c")


def test_the_docs_split_of_ones_own_folder_loads(tmp_path, write_tree, monkeypatch):
    # docs/experiments.md, "Your own images": its lines, as written, make a loadable tree
    doc = (Path(__file__).resolve().parents[2] / "docs" / "experiments.md").read_text()
    section = doc.split("### Your own images", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    spec = {c: {f"{i:02d}.png": v for i in range(10)} for c, v in (("a b", 10), ("cat", 90))}
    root = write_tree(tmp_path, {"FOLDER": spec}) / "FOLDER"
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "experiments.md", "exec"), {})
    ds = load_dataset(root, cache_dir=tmp_path / "c")
    assert ds.classes == ("a b", "cat")
    assert ds.y_train.tolist() == [0] * 8 + [1] * 8 and ds.y_test.tolist() == [0] * 2 + [1] * 2


def test_the_cifar10_python_download_as_it_is_says_to_extract_it(tmp_path, write_tar):
    # cifar-10-python.tar.gz, the usual download, was "not an image-folder tree"
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
    members = {"cifar-10-batches-py": None}
    members |= {f"cifar-10-batches-py/{n}": b"x" for n in names}
    archive = write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    with pytest.raises(DataError) as err:
        load_dataset(archive, cache_dir=tmp_path / "c")
    assert str(err.value) == (
        f"{archive} holds the CIFAR-10 python batches (cifar-10-batches-py/data_batch_1, ...), "
        f"which are read from a folder: extract it (tar xf {archive}) and pass the folder it "
        "gives, cifar-10-batches-py."
    )
