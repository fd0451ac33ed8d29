"""In-memory data (arrays, tensors, a torch Dataset) -> ImageDataset: the .npz rules, one
conversion, one-line refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fishermask.data.memory import dataset_sha256, from_memory
from fishermask.data.npz import load_npz
from fishermask.errors import DataError

RNG = np.random.default_rng(0)
X = RNG.random((30, 8, 8))  # float64 in [0, 1], grey [N, H, W]
Y = np.arange(30) % 3
XT, YT = X[:9], Y[:9]


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter([])


class Items(torch.utils.data.Dataset):
    """A map-style Dataset returning what ``make(i)`` makes."""

    def __init__(self, n: int, make, classes=None) -> None:
        self.n, self.make = n, make
        if classes is not None:
            self.classes = classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.make(i)


def test_arrays_convert_as_the_npz_loader_does(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_train=X, y_train=Y, x_test=XT, y_test=YT)
    ref = load_npz(path, None)
    ds = from_memory((X, Y), (XT, YT), name="d")
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(ds, k), getattr(ref, k)), k
    assert ds.classes == ref.classes == ("0", "1", "2")
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape == (30, 1, 8, 8)
    assert dataset_sha256(ds) == dataset_sha256(ref)


def test_tensors_and_every_dataset_item_form_give_the_same_bytes() -> None:
    u8 = np.rint(X * 255).astype(np.uint8)  # what the float images become
    ref = from_memory((X, Y), (XT, YT))
    forms = {
        "tensors": (torch.from_numpy(X), torch.from_numpy(Y)),
        "PIL L": Items(30, lambda i: (Image.fromarray(u8[i]), int(Y[i]))),
        "ToTensor-like CHW float": Items(
            30, lambda i: (torch.from_numpy(u8[i][None]).float() / 255, torch.tensor(Y[i]))
        ),
        "uint8 HWC array": Items(30, lambda i: (u8[i][:, :, None], np.int64(Y[i]))),
    }
    for what, train in forms.items():
        ds = from_memory(train, (XT, YT))
        assert torch.equal(ds.x_train, ref.x_train), what
        assert torch.equal(ds.y_train, ref.y_train), what
        assert dataset_sha256(ds) == dataset_sha256(ref), what


def test_rgb_channel_last_and_dataset_class_names() -> None:
    rgb = RNG.integers(0, 256, (12, 6, 5, 3), dtype=np.uint8)  # [N, H, W, C]
    y = np.arange(12) % 2
    ds = from_memory(
        Items(12, lambda i: (Image.fromarray(rgb[i]), int(y[i])), classes=["cat", "dog"]),
        (rgb[:4], y[:4]),
    )
    assert ds.x_train.shape == (12, 3, 6, 5)
    assert torch.equal(ds.x_train, torch.from_numpy(rgb.transpose(0, 3, 1, 2)))
    assert ds.classes == ("cat", "dog")
    assert from_memory((rgb, y), (rgb, y), classes=["a", "b"]).classes == ("a", "b")
    same = Items(12, lambda i: (rgb[i], int(y[i])), classes=["cat", "dog"])
    assert from_memory(same, same, classes=("cat", "dog")).classes == ("cat", "dog")


def test_the_hash_follows_content_not_names() -> None:
    a = from_memory((X, Y), (XT, YT), name="a")
    assert dataset_sha256(a) == dataset_sha256(from_memory((X, Y), (XT, YT), name="b"))
    y2 = Y.copy()
    y2[0] = 1
    assert dataset_sha256(a) != dataset_sha256(from_memory((X, y2), (XT, YT)))
    named = from_memory((X, Y), (XT, YT), classes=["a", "b", "c"])
    assert dataset_sha256(a) != dataset_sha256(named)


NAN = X.copy()
NAN[4, 2, 2] = np.nan
NAN2 = NAN.copy()
NAN2[9, 0, 1] = np.inf
BAD = {
    "lengths": (((X, Y[:-1]), (XT, YT)), {}, "x has 30 images but y has 29 labels"),
    "float labels": (((X, Y.astype(float)), (XT, YT)), {}, "labels must be a 1-D integer"),
    "one-hot labels": (((X, np.eye(3)[Y]), (XT, YT)), {}, "not one-hot"),
    "out of range": (((X, Y), (XT, YT)), {"classes": ["a", "b"]}, "labels must be 0..1"),
    "negative": (((X, Y - 1), (XT, YT)), {}, "labels range over [-1, 1]"),
    "NaN": (
        ((NAN, Y), (XT, YT)),
        {},
        "image 4 holds NaN or infinite values; fix or drop it.",  # the image, not the values
    ),
    "NaN twice": (
        ((NAN2, Y), (XT, YT)),
        {},
        "2 images hold NaN or infinite values (the first is image 4); fix or drop them.",
    ),
    "normalised": (((X - 0.5, Y), (XT, YT)), {}, "float images must lie in [0, 1]"),
    "channel-last ambiguity": (
        ((RNG.random((30, 3, 8, 3)), Y), (XT, YT)),
        {},
        "is ambiguous ([N, H, W, C] or [N, C, H, W])",
    ),
    "no channel axis": (((RNG.random((30, 5, 8, 8)), Y), (XT, YT)), {}, "no channel axis"),
    "tiny images": (((RNG.random((30, 3, 3)), Y), (RNG.random((9, 3, 3)), YT)), {}, "4x4"),
    "int64 images": (((np.zeros((30, 8, 8), np.int64), Y), (XT, YT)), {}, "dtype int64"),
    "not data": (("x.npz", (XT, YT)), {}, "got str; pass (x, y) arrays/tensors"),
    "a triple": (  # said only 'got tuple'
        ((X, Y, Y), (XT, YT)),
        {},
        "train: got a tuple of 3 values (ndarray [30, 8, 8], ndarray [30], ndarray [30]); pass "
        "(x, y) arrays/tensors, or a map-style torch Dataset",
    ),
    "x alone": ((X, (XT, YT)), {}, "train: got ndarray [30, 8, 8]; pass (x, y)"),
    "test a 1-list": (((X, Y), [XT]), {}, "test: got a list of 1 value (ndarray [9, 8, 8]); "),
    "classes str": (((X, Y), (XT, YT)), {"classes": "abc"}, "one name per class"),
    "dict items": (
        (Items(30, lambda i: {"image": X[i], "label": Y[i]}), (XT, YT)),
        {},
        "train item 0 is a dict (keys image, label); wrap the Dataset",
    ),
    "triples": ((Items(30, lambda i: (X[i], Y[i], i)), (XT, YT)), {}, "of 3 values"),
    "Normalize output": (
        (Items(30, lambda i: (torch.from_numpy(X[i][None] - 0.5), int(Y[i]))), (XT, YT)),
        {},
        "drop transforms.Normalize",
    ),
    "NaN item": ((Items(30, lambda i: (NAN[i], int(Y[i]))), (XT, YT)), {}, "train item 4"),
    "sizes differ": (
        (Items(30, lambda i: (np.zeros((8, 8 + (i == 7)), np.uint8), int(Y[i]))), (XT, YT)),
        {},
        "train item 7 is 1x8x9 but item 0 is 1x8x8",
    ),
    "RGBA": (
        (Items(30, lambda i: (Image.new("RGBA", (8, 8)), int(Y[i]))), (XT, YT)),
        {},
        "mode RGBA; give mode L or RGB",
    ),
    "float label": ((Items(30, lambda i: (X[i], float(Y[i]))), (XT, YT)), {}, "label 0.0"),
    "one-hot item": (
        (Items(30, lambda i: (X[i], torch.eye(3)[Y[i]])), (XT, YT)),
        {},
        "not an integer class index",
    ),
    "iterable": (
        (Stream(), (XT, YT)),
        {},
        "an IterableDataset has no random access",
    ),
    "empty Dataset": ((Items(0, None), (XT, YT)), {}, "the Dataset is empty"),
    "train/test classes differ": (
        (
            Items(30, lambda i: (X[i], int(Y[i])), classes=["cat", "dog", "eel"]),
            Items(9, lambda i: (X[i], int(Y[i])), classes=["cat", "eel"]),
        ),
        {},
        "(3 and 2; at index 1: 'dog' in train, 'eel' in test)",
    ),
    "classes= reorder the Dataset's": (
        (Items(30, lambda i: (X[i], int(Y[i])), classes=["cat", "dog", "eel"]), (XT, YT)),
        {"classes": ["dog", "cat", "eel"]},
        "at index 0: 'dog' in classes=, 'cat' in the Dataset), so label 0 would get the wrong",
    ),
    "classes= longer than the Dataset's": (
        (Items(30, lambda i: (X[i], int(Y[i])), classes=["cat", "dog", "eel"]), (XT, YT)),
        {"classes": ["cat", "dog", "eel", "fox"]},
        "(4 and 3 names; at index 3: 'fox' in classes=, nothing in the Dataset)",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_is_one_line(case: str) -> None:
    args, kwargs, expected = BAD[case]
    with pytest.raises(DataError) as exc:
        from_memory(*args, **kwargs)
    msg = str(exc.value)
    assert expected in msg, msg
    assert "\n" not in msg


def test_an_error_raised_by_a_dataset_item_names_the_item() -> None:
    """A Dataset whose __getitem__ raises (a corrupt file, a bad index) used to give its own
    traceback only, without saying which item of which split raised it."""

    def make(i: int):
        if i == 7:
            raise OSError("image file is truncated")
        return X[i], int(Y[i])

    with pytest.raises(OSError, match="truncated") as exc:
        from_memory(Items(30, make), (XT, YT))
    assert "raised by train Dataset item 7 (ds[7])" in "\n".join(exc.value.__notes__)
