"""Shared plumbing of the builders that read a user-downloaded archive from the manual dir.

A `ManualArchive` describes where the data of a dataset can be: an archive file (`.tgz` or
`.zip`) in the TFDS manual directory, or the folder that archive extracts to. `open_source`
finds it, extracts an archive into a temporary folder (removed by `cleanup`), and returns the
dataset's root folder. Nothing is downloaded.

The readers (`read_npy`, `read_png`, `read_mat`, `jpeg_header`) turn any decoding failure into
a `ValueError` that names the file, so that a corrupt archive member is easy to find.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib

import numpy as np


@dataclasses.dataclass(frozen=True)
class ManualArchive:
    """`archive` (e.g. `NYUD_MT.tgz`) extracts to the folder `folder` (e.g. `NYUD_MT`)."""

    archive: str
    folder: str
    url: str
    marker: str  # a path under the folder that must exist, e.g. "gt_sets"

    def instructions(self, manual_dir: str | os.PathLike | None) -> str:
        where = manual_dir if manual_dir else "<data_dir>/downloads/manual"
        return (
            f"Download {self.archive} from {self.url} and put it at {where}/{self.archive} "
            f"(or extract it there, so that {where}/{self.folder}/{self.marker} exists). "
            "Set another folder with config.dataset.manual_dir."
        )


def manual_dir_of(dl_manager, spec: ManualArchive) -> str:
    """The manual dir of `dl_manager`; a `FileNotFoundError` saying where to put the archive."""
    try:
        return os.fspath(dl_manager.manual_dir)
    except (AssertionError, ValueError):
        path = getattr(dl_manager, "_manual_dir", None)
        raise FileNotFoundError(
            f"{spec.archive} not found: the manual directory {path} does not exist or is "
            f"empty. {spec.instructions(path)}"
        ) from None


class SourceFolder:
    """The dataset's root folder, extracted into a temporary folder when it came as an archive."""

    def __init__(self, manual_dir: str, spec: ManualArchive):
        self.spec = spec
        self._tmp: str | None = None
        folder = os.path.join(manual_dir, spec.folder)
        archive = os.path.join(manual_dir, spec.archive)
        if os.path.isdir(folder):
            self.root = folder
            self.origin = folder
        elif os.path.isfile(archive):
            self._tmp = tempfile.mkdtemp(prefix=f"{spec.folder}.", dir=_scratch_dir(manual_dir))
            _extract(archive, self._tmp)
            self.root = _find_root(self._tmp, spec)
            self.origin = archive
        else:
            raise FileNotFoundError(
                f"Neither {archive} nor the folder {folder} exists. "
                f"{spec.instructions(manual_dir)}"
            )
        if not os.path.exists(os.path.join(self.root, spec.marker)):
            self.cleanup()
            raise FileNotFoundError(
                f"{self.origin} is incomplete: {spec.folder}/{spec.marker} is missing. "
                f"{spec.instructions(manual_dir)}"
            )

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def require(self, relpaths: list[str]) -> None:
        """A `FileNotFoundError` that lists the missing files (at most 5 named)."""
        missing = [p for p in relpaths if not os.path.isfile(self.path(p))]
        if missing:
            shown = ", ".join(f"{self.spec.folder}/{p}" for p in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise FileNotFoundError(
                f"{self.origin} is incomplete: {len(missing)} file(s) missing: {shown}{more}. "
                f"Download {self.spec.archive} again from {self.spec.url}."
            )

    def read_lines(self, relpath: str) -> list[str]:
        """The non-empty lines of a text file of the dataset (split lists)."""
        self.require([relpath])
        with open(self.path(relpath)) as f:
            return [line.strip() for line in f.read().splitlines() if line.strip()]

    def cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _scratch_dir(manual_dir: str) -> str | None:
    """Where to extract: `$MTNETS_EXTRACT_DIR`, else the manual dir when writable, else /tmp."""
    env = os.environ.get("MTNETS_EXTRACT_DIR")
    if env:
        return env
    return manual_dir if os.access(manual_dir, os.W_OK) else None


def _extract(archive: str, target: str) -> None:
    """Extracts a `.tgz`/`.tar` or `.zip`; a `ValueError` naming the archive if it is corrupt."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ValueError(f"member {bad} fails its CRC check")
                zf.extractall(target)
        else:
            with tarfile.open(archive, "r:*") as tf:
                tf.extractall(target, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        shutil.rmtree(target, ignore_errors=True)
        raise ValueError(
            f"{archive} is corrupt or truncated ({error}); download it again."
        ) from None
    except ValueError as error:
        shutil.rmtree(target, ignore_errors=True)
        raise ValueError(f"{archive} is corrupt ({error}); download it again.") from None


def _find_root(extracted: str, spec: ManualArchive) -> str:
    """The dataset folder inside an extracted archive: `<folder>/` or the archive's top level."""
    nested = os.path.join(extracted, spec.folder)
    return nested if os.path.isdir(nested) else extracted


# -------------------------------------------------------------------------------------------
# Readers that name the file on failure.
def read_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001  (any decoding failure means a corrupt file)
        raise ValueError(f"Cannot read {path}: {error}") from None


def read_png(path: str) -> np.ndarray:
    """The pixel values of a PNG as stored (palette indices for palette images)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.array(image)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"Cannot read {path}: {error}") from None


def jpeg_bytes(path: str) -> tuple[bytes, tuple[int, int]]:
    """The JPEG file's bytes and its (height, width); an error naming the file unless it is a
    decodable RGB or greyscale JPEG (what the reference's `Image.open(...).convert('RGB')`
    reads identically to TensorFlow's 3-channel JPEG decoder)."""
    from PIL import Image

    with open(path, "rb") as f:
        data = f.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode, (width, height), fmt = image.mode, image.size, image.format
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"Cannot read {path}: {error}") from None
    if fmt != "JPEG" or mode not in ("RGB", "L"):
        raise ValueError(f"{path} is not an RGB or greyscale JPEG (format {fmt}, mode {mode}).")
    return data, (height, width)


def read_mat(path: str) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"Cannot read {path}: {error}") from None


class ManualArchiveMixin:
    """For a `GeneratorBasedBuilder`: opens the source in `_split_generators` (via `open_source`)
    and removes any temporary extraction once `download_and_prepare` is over."""

    ARCHIVE: ManualArchive

    def open_source(self, dl_manager) -> SourceFolder:
        source = SourceFolder(manual_dir_of(dl_manager, self.ARCHIVE), self.ARCHIVE)
        self._mtnets_sources = [*getattr(self, "_mtnets_sources", []), source]
        return source

    def download_and_prepare(self, *args, **kwargs):
        from mtnets import progress

        progress.quiet_progress_bars_unless_terminal()
        try:
            return super().download_and_prepare(*args, **kwargs)
        finally:
            for source in getattr(self, "_mtnets_sources", []):
                source.cleanup()
            self._mtnets_sources = []
