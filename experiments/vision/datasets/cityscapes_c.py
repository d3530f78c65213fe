"""Cityscapes-C: the clean Cityscapes test split with corrupted images (Hendrycks & Dietterich,
ICLR 2019, "Benchmarking neural network robustness to common corruptions and perturbations";
the image corruptions as packaged by Michaelis et al., 2019, ``imagecorruptions``).

On-disk format (one tree for all corruptions)::

    <root>/<corruption>/<severity>/<i>.png

8-bit RGB PNG, ``severity`` in ``1..5``, ``i`` the index of the clean image
``<clean_root>/val/image/<i>.npy`` it was made from. Labels and depth are read from the clean
split, paired by index. The pairing is verified when the split is built: the set of indices must
equal the clean split's (a missing or extra file is an error naming it) and every PNG must have
the clean image's size; a file that cannot be decoded is an error naming it when read.

Generation (:func:`write_corrupted_tree`, ``coremtl data corrupt``) quantises each clean image to
8 bits, ``u = round(255 x)``, applies the corruption, and writes the result. The corruption of
image ``i`` draws from the seed ``derive_seed(seed, "corruption", name, severity, i, bits=32)``
(:mod:`scm.seeds`), so a tree is a function of its arguments. The default corruption function is
``imagecorruptions.corrupt`` from the ``imagecorruptions-imaug`` package (a maintained fork of
``imagecorruptions`` that runs with current NumPy, SciPy and scikit-image), imported only when
generating.

A run tests on one ``(corruption, severity)`` pair, on every severity of one corruption
(``severity: 0``), or on every corruption of the tree (``name: all``). Several pairs are
concatenated and scored as one split (one confusion matrix over the union), which is not the
mean of per-corruption scores; for those, evaluate one checkpoint per pair with
``coremtl evaluate --checkpoint ... --set data.corruption.name=... --set
data.corruption.severity=...``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import ConcatDataset, Dataset

from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

from .npy import MultiTaskNpyDataset

if TYPE_CHECKING:
    from ..config import DataConfig
    from .splits import Splits

SEVERITIES = (1, 2, 3, 4, 5)
Corruption = Callable[[np.ndarray, str, int, int], np.ndarray]


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def _clean_image_size(clean: MultiTaskNpyDataset, index: int) -> tuple[int, int]:
    if clean.resolution is not None:
        return (int(clean.resolution[0]), int(clean.resolution[1]))
    path = clean.folder / "image" / f"{index}.npy"
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (ValueError, OSError, EOFError) as error:
        raise InvalidParameterError(f"data: corrupt file {path} ({error})") from None
    return (int(shape[0]), int(shape[1]))


class CorruptedDataset(Dataset):
    """The samples of ``clean`` with their image replaced by ``<root>/<corruption>/<severity>``."""

    def __init__(
        self, clean: MultiTaskNpyDataset, root: str | Path, corruption: str, severity: int
    ) -> None:
        if clean.augment:
            raise InvalidParameterError("clean: the corrupted test split must not be augmented")
        self.clean = clean
        self.root = Path(root)
        self.corruption = corruption
        self.severity = int(severity)
        self.folder = self.root / corruption / str(severity)
        if not self.folder.is_dir():
            known = _subfolders(self.root) if self.root.is_dir() else []
            raise FileNotFoundError(
                f"data.corruption: missing folder {self.folder} (corruptions in "
                f"{self.root}: {known})"
            )
        found: dict[int, Path] = {}
        for path in self.folder.glob("*.png"):
            if not path.stem.isdigit():
                raise InvalidParameterError(
                    f"data: {path} is not named <i>.png after a clean image index"
                )
            found[int(path.stem)] = path
        expected = set(clean.indices)
        missing = sorted(expected - set(found))
        if missing:
            raise FileNotFoundError(
                f"data: missing file {self.folder / f'{missing[0]}.png'} ({len(missing)} of "
                f"{len(expected)} clean images of {clean.folder} have no corrupted version)"
            )
        extra = sorted(set(found) - expected)
        if extra:
            raise InvalidParameterError(
                f"data: {found[extra[0]]} has no clean counterpart "
                f"{clean.folder / 'image' / f'{extra[0]}.npy'} ({len(extra)} extra file(s); "
                f"expected {len(expected)} files paired by index)"
            )
        self.paths = [found[index] for index in clean.indices]
        for index, path in zip(clean.indices, self.paths, strict=True):
            try:
                with Image.open(path) as image:
                    size = (image.height, image.width)
            except (UnidentifiedImageError, OSError) as error:
                raise InvalidParameterError(f"data: corrupt file {path} ({error})") from None
            expected_size = _clean_image_size(clean, index)
            if size != expected_size:
                raise InvalidParameterError(
                    f"data: {path} has size {size}, expected {expected_size} (its clean image)"
                )

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        sample = self.clean[position]
        path = self.paths[position]
        try:
            with Image.open(path) as picture:
                picture.load()
                mode = picture.mode
                array = np.asarray(picture)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise InvalidParameterError(f"data: corrupt file {path} ({error})") from None
        if mode != "RGB":
            raise InvalidParameterError(f"data: {path} has mode {mode}, expected 8-bit RGB")
        if array.shape[:2] != tuple(sample["image"].shape[-2:]):
            raise InvalidParameterError(
                f"data: {path} has size {array.shape[:2]}, expected "
                f"{tuple(sample['image'].shape[-2:])} (its clean image)"
            )
        image = array.astype(np.float32).transpose(2, 0, 1) / 255.0
        sample["image"] = torch.from_numpy(np.ascontiguousarray(image))
        return sample


def corrupted_test_split(
    clean: MultiTaskNpyDataset, root: str | Path, name: str, severity: int
) -> Dataset:
    """One pair, all severities of one corruption (``severity=0``), or all (``name="all"``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.corruption.root: no such folder {root}")
    names = _subfolders(root) if name == "all" else [name]
    if not names:
        raise FileNotFoundError(f"data.corruption.root: no <corruption>/ folders in {root}")
    parts = []
    for corruption in names:
        if severity == 0:
            folder = root / corruption
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"data.corruption: missing folder {folder} (corruptions in {root}: "
                    f"{_subfolders(root)})"
                )
            levels = [int(s) for s in _subfolders(folder) if s.isdigit()]
            if not levels:
                raise FileNotFoundError(f"data.corruption: no <severity>/ folders in {folder}")
        else:
            levels = [severity]
        parts.extend(CorruptedDataset(clean, root, corruption, level) for level in levels)
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def image_seed(seed: int, name: str, severity: int, index: int) -> int:
    """The 32-bit seed of image ``index`` (the corruption library seeds NumPy's legacy global
    generator): ``derive_seed(seed, "corruption", name, severity, index, bits=32)``."""
    return derive_seed(seed, "corruption", name, severity, index, bits=32)


def _imagecorruptions():
    """The ``imagecorruptions`` module (from the imagecorruptions-imaug package), or an error
    saying how to install it."""
    try:
        import imagecorruptions
    except ImportError as error:
        raise ModuleNotFoundError(
            "generating Cityscapes-C needs the imagecorruptions-imaug package "
            f"(pip install 'imagecorruptions-imaug>=1.1.5,<2'): {error}"
        ) from None
    return imagecorruptions


def library_corruption(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``imagecorruptions.corrupt`` with its randomness fixed by ``seed``.

    The package draws from NumPy's global generator (and takes a ``seed`` argument for the
    corruptions that use another one); the global state is seeded for the call and restored.
    """
    library = _imagecorruptions()
    corrupt, corruption_dict = library.corrupt, library.corruption_dict
    if name not in corruption_dict:
        raise InvalidParameterError(
            f"--corruptions: unknown corruption {name!r}; expected among {sorted(corruption_dict)}"
        )
    kwargs = {"seed": seed} if "seed" in inspect.signature(corruption_dict[name]).parameters else {}
    state = np.random.get_state()  # noqa: NPY002 (the package reads the legacy global generator)
    try:
        np.random.seed(seed)  # noqa: NPY002
        return corrupt(image, severity=severity, corruption_name=name, **kwargs)
    finally:
        np.random.set_state(state)  # noqa: NPY002


def corruption_names(subset: str = "common") -> list[str]:
    """Names of a subset of ``imagecorruptions`` (``common``: the 15 of Hendrycks & Dietterich)."""
    get_corruption_names = _imagecorruptions().get_corruption_names
    try:
        return list(get_corruption_names(subset))
    except ValueError:
        raise InvalidParameterError(
            f"--corruptions: unknown subset {subset!r}; expected common, validation, noise, blur, "
            "weather, digital or all"
        ) from None


def write_corrupted_tree(
    clean_root: str | Path,
    root: str | Path,
    corruptions: Sequence[str],
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    split: str = "val",
    corrupt: Corruption | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``<root>/<corruption>/<severity>/<i>.png`` for every clean image of ``split``.

    ``corrupt(image_uint8, name, severity, seed) -> image_uint8`` defaults to
    :func:`library_corruption`. Returns the folders written.
    """
    if not corruptions:
        raise InvalidParameterError("--corruptions: expected at least one corruption")
    if corrupt is None:
        known = corruption_names("all")
        unknown = [name for name in corruptions if name not in known]
        if unknown:
            raise InvalidParameterError(
                f"--corruptions: unknown {unknown}; expected names among {known}"
            )
        corrupt = library_corruption
    for severity in severities:
        if severity not in SEVERITIES:
            raise InvalidParameterError(
                f"--severities: expected values in {list(SEVERITIES)}, got {severity!r}"
            )
    if seed < 0:
        raise InvalidParameterError(f"--seed: expected a non-negative integer, got {seed}")
    clean = MultiTaskNpyDataset(clean_root, split, [], num_classes=2)
    root = Path(root)
    folders = [root / name / str(severity) for name in corruptions for severity in severities]
    for folder in folders:
        if folder.is_dir() and any(folder.iterdir()) and not overwrite:
            raise InvalidParameterError(
                f"--overwrite: {folder} exists and is not empty (pass --overwrite to replace it)"
            )
    for name in corruptions:
        for severity in severities:
            folder = root / name / str(severity)
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("*.png"):
                stale.unlink()
            for position, index in enumerate(clean.indices):
                image = clean[position]["image"].numpy().transpose(1, 2, 0)
                quantised = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
                out = np.asarray(
                    corrupt(quantised, name, severity, image_seed(seed, name, severity, index))
                )
                if out.shape != quantised.shape:
                    raise InvalidParameterError(
                        f"corruption {name!r}: returned shape {out.shape} for an image of shape "
                        f"{quantised.shape}"
                    )
                out = np.clip(np.round(out), 0, 255).astype(np.uint8)
                Image.fromarray(out).save(folder / f"{index}.png")
    return folders


def cityscapes_c_splits(config: DataConfig, clean: Splits) -> Splits:
    """Train and validate on the ``clean`` Cityscapes splits of ``data.root``; test on the
    corrupted ``<root>/val``."""
    from .splits import Splits

    options = config.corruption
    if options.root is None:
        raise InvalidParameterError(
            "data.corruption.root: expected the <corruption>/<severity>/<i>.png folder"
        )
    test = corrupted_test_split(clean.test, options.root, options.name, options.severity)
    return Splits(train=clean.train, val=clean.val, test=test)
