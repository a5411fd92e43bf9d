"""Mends of session 54: one ``drain`` (a ``*_steps`` generator's work done in one call) for the whole code base, in a
torch-free module; a labels stack read a frame at a time is read once by the labels TIFF writer (it was read once to
find its highest id, once more to hash it for an OME UUID, and once to write it), the file the same byte for byte."""

from __future__ import annotations

import collections
import hashlib
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Counter, List, Tuple

import numpy as np
import pytest
import tifffile

from napari_sam2.export import Calibration, save_labels_tiff, tiff_calibration
from sam2_model.tracking import Lineage, Track
from sam2_model.tracking.lineage import consistent_labels

CAL = Calibration(pixel_size=(0.65, 0.65), length_unit="micrometer", frame_interval=300.0, time_unit="second",
                  origin=(0.0, 3.25, 1.3))
FRAMES = 8


# ---------------------------------------------------------------- 1. one drain
def test_one_drain_serves_every_steps_generator():
    """session_file, detection, automatic and seeding each had their own copy of the loop that runs a generator to
    its end: now all name sam2_model.work_steps.drain, which returns the generator's value and raises its error."""
    from napari_sam2 import session_file
    from sam2_model import automatic, seeding
    from sam2_model.tracking import detection
    from sam2_model.work_steps import drain

    assert session_file.drain is drain and detection.drain is drain
    assert automatic.drain is drain and seeding.drain is drain

    def steps(fail: bool):
        yield 1
        yield 2
        if fail:
            raise ValueError("broken")
        return "done"

    assert drain(steps(False)) == "done"
    with pytest.raises(ValueError, match="broken"):
        drain(steps(True))


def test_relay_passes_steps_on_returns_the_value_and_closes_what_it_relays():
    """relay (the detector's "finding" and "seeding" work were two copies of its loop): each step passed on as
    each(step), the value returned to ``yield from``, and the steps closed when the relay is closed part-way."""
    from sam2_model.work_steps import drain, relay

    closed = []

    def steps():
        try:
            yield 1, 4
            yield 2, 4
            return "points"
        finally:
            closed.append(True)

    def outer(out):
        out.append((yield from relay(steps(), lambda step: ("finding", *step))))

    out: List[Any] = []
    assert list(outer(out)) == [("finding", 1, 4), ("finding", 2, 4)] and out == ["points"] and closed == [True]
    running = relay(steps(), lambda step: step)
    assert next(running) == (1, 4)
    running.close()
    assert closed == [True, True]
    assert drain(relay(steps(), str)) == "points"


def test_the_drain_module_imports_no_numpy_or_torch():
    """The plugin's Qt-free modules take drain without loading the model's modules (detection costs ~2 s)."""
    code = ("import sys, sam2_model.work_steps; "
            "print(sorted(m for m in ('numpy', 'torch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- 2. a lazy labels stack read once
class ReadCounter:
    """A (T, ...) stack indexable by one frame only (as a FramesView, a zarr array), counting each frame's reads."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.reads: Counter[int] = collections.Counter()

    def __getitem__(self, t: Any) -> np.ndarray:
        if not isinstance(t, (int, np.integer)):
            raise TypeError(f"indexed by one frame only, got {t!r}")
        self.reads[int(t)] += 1
        return self.array[t]


def cells(dtype: Any = np.uint32, top: int = 7, from_frame: int = 0, frames: int = FRAMES) -> np.ndarray:
    """(frames, 96, 128) labels: ids 1 and 3 drifting, id ``top`` from frame ``from_frame`` on (before it: id 2)."""
    labels = np.zeros((frames, 96, 128), dtype)
    for t in range(frames):
        labels[t, 10 + t:40 + t, 20:50] = 1
        labels[t, 60:80, 60 + 2 * t:90 + 2 * t] = top if t >= from_frame else 2
        labels[t, 5:15, 100:120] = 3
    return labels


@pytest.mark.parametrize("dtype, top, axes, calibration", [
    (np.uint32, 7, "TYX", None),  # an ImageJ hyperstack (uint16) from uint32 labels: their ids were read first
    (np.uint32, 7, "TYX", CAL),
    (np.int32, 7, None, CAL),  # signed: the max and then the min were read, two passes before the write
    (np.int64, 300, "TYX", None),
])
def test_a_lazy_stack_whose_ids_fit_16_bits_is_read_once(tmp_path, dtype, top, axes, calibration):
    """Each frame is read once (it was read twice, three times for signed labels: a pass for the highest id (and
    the lowest) to pick uint16, then the write), and the file is the whole array's, byte for byte."""
    labels = cells(dtype, top)
    stack = ReadCounter(labels)
    seen: List[Tuple[int, int]] = []
    save_labels_tiff(stack, tmp_path / "lazy.tif", axes, calibration, lambda done, total: seen.append((done, total)))
    assert stack.reads == {t: 1 for t in range(FRAMES)}, dict(stack.reads)
    assert seen == [(done, FRAMES) for done in range(1, FRAMES + 1)]
    save_labels_tiff(labels, tmp_path / "whole.tif", axes, calibration)
    assert (tmp_path / "lazy.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    with tifffile.TiffFile(tmp_path / "lazy.tif") as tif:
        assert tif.is_imagej and tif.pages[0].dtype == np.uint16
        np.testing.assert_array_equal(tif.asarray(), labels)


@pytest.mark.parametrize("calibration", [None, CAL])
def test_a_lazy_stack_with_an_id_over_16_bits_reads_each_frame_once(tmp_path, calibration):
    """Ids that do not fit 16 bits from frame 5 on: the last frame, read first (and kept for its turn), holds them, so
    the uint32 TIFF is written straight away, every frame read once (before: frames 0-5 twice, earlier every frame
    twice, three times with an OME UUID to hash); the progress goes on, never back; the bytes are the whole array's."""
    labels = cells(np.uint32, 70_000, from_frame=5)
    stack = ReadCounter(labels)
    seen: List[int] = []
    save_labels_tiff(stack, tmp_path / "lazy.tif", "TYX", calibration, lambda done, total: seen.append(done))
    assert stack.reads == {t: 1 for t in range(FRAMES)}, dict(stack.reads)
    assert seen == list(range(1, FRAMES + 1))
    save_labels_tiff(labels, tmp_path / "whole.tif", "TYX", calibration)
    assert (tmp_path / "lazy.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["lazy.tif", "whole.tif"]  # no temporary file left


def test_consistent_labels_over_16_bits_are_read_once_for_the_ome_tiff(tmp_path):
    """A ConsistentLabels knows its ids (uint32 ids over 65535: no hyperstack, no pass for them); its source was
    read a second time to hash the OME UUID before the write: now the planes are hashed as they are written and the
    UUID put in the description after. The file is the one tifffile writes for the whole array with that UUID."""
    labels = cells(np.uint32, 70_000)
    source = ReadCounter(labels)
    consistent, _ = consistent_labels(source, Lineage([Track(1, 0, FRAMES - 1), Track(3, 0, FRAMES - 1),
                                                       Track(70_000, 0, FRAMES - 1)]))
    source.reads.clear()  # (consistent_labels' own pass, before the writer)
    save_labels_tiff(consistent, tmp_path / "lazy.tif", "TYX", CAL)
    assert source.reads == {t: 1 for t in range(FRAMES)}, dict(source.reads)
    arguments = tiff_calibration(CAL, "TYX")  # what the whole-array writer writes, its UUID from the pixels
    metadata = arguments.pop("metadata")
    digest = hashlib.sha1(labels.tobytes())
    digest.update(f"{labels.shape}{labels.dtype}{sorted(metadata.items())}".encode())
    metadata["UUID"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, digest.hexdigest())}"
    tifffile.imwrite(tmp_path / "whole.tif", labels, compression="zlib", photometric="minisblack", bigtiff=False,
                     metadata=metadata, **arguments)
    assert (tmp_path / "lazy.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()


def test_a_frame_that_fails_during_the_checked_write_leaves_the_old_file(tmp_path):
    """A frame that cannot be read while the hyperstack is written (its ids checked as it goes) fails the export
    whole: the old file stays, no temporary file; nothing falls back to the other TIFF."""
    labels = cells(np.uint32, 7)

    class Failing(ReadCounter):
        def __getitem__(self, t: Any) -> np.ndarray:
            if int(t) == 4:
                raise OSError("disk gone")
            return super().__getitem__(t)

    path = Path(tmp_path / "l.tif")
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk gone"):
        save_labels_tiff(Failing(labels), path, "TYX")
    assert [p.name for p in tmp_path.iterdir()] == ["l.tif"] and path.read_bytes() == b"old"
