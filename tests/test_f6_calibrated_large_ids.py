"""Calibrated labels TIFFs of 64-bit labels (a napari layer of uint64 or int64): an OME-TIFF has no 64-bit integers.

Labels whose ids fit 16 bits are a uint16 ImageJ hyperstack whatever their dtype; others with a calibration are an
OME-TIFF, which a uint64 array made tifffile fail with its own words ("OmeXmlError: data type 'uint64' not
supported") for any id. Ids up to 2**32 - 1 are written as uint32 now, whole; a larger (or negative) id is refused
before a file is written, in words naming it and the ids accepted.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sam2.export import Calibration, save_labels_tiff

CALIBRATION = Calibration(pixel_size=(0.5, 0.25), length_unit="micrometer", frame_interval=30.0, time_unit="second")


class FramesOnly:
    """Labels read a frame at a time (as a zarr or dask array is): shape, dtype and one frame per index."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype = array, array.shape, array.dtype

    def __getitem__(self, t: int) -> np.ndarray:
        return self.array[t]


def labels_with(top: int, dtype=np.uint64) -> np.ndarray:
    """(3, 6, 8) labels of ``dtype``: a few cells, the highest id ``top`` on the middle frame only."""
    labels = np.zeros((3, 6, 8), dtype)
    labels[:, 1:3, 1:4] = 7
    labels[:, 3:6, 4:8] = 70000  # over 16 bits: not a hyperstack, an OME-TIFF
    labels[1, 0, 0] = top
    return labels


@pytest.mark.parametrize("dtype", [np.uint64, np.int64])
@pytest.mark.parametrize("lazy", [False, True], ids=["array", "read by frame"])
def test_64_bit_labels_with_ids_within_uint32_are_written_whole(tmp_path, dtype, lazy):
    labels = labels_with(2**32 - 1, dtype)
    path = tmp_path / "labels.tif"
    save_labels_tiff(FramesOnly(labels) if lazy else labels, path, calibration=CALIBRATION)
    with tifffile.TiffFile(path) as tiff:
        written = tiff.asarray()
        assert tiff.is_ome
        assert 'PhysicalSizeX="0.25"' in tiff.ome_metadata and 'TimeIncrement="30.0"' in tiff.ome_metadata
    assert written.dtype == np.uint32
    np.testing.assert_array_equal(written.astype(np.int64), labels.astype(np.int64))


def test_64_bit_labels_read_by_frame_give_the_arrays_file(tmp_path):
    """The same file, byte for byte (its content UUID included), from the array and from the stack read by frame."""
    labels = labels_with(123456)
    save_labels_tiff(labels, tmp_path / "array.tif", calibration=CALIBRATION)
    save_labels_tiff(FramesOnly(labels), tmp_path / "frames.tif", calibration=CALIBRATION)
    assert (tmp_path / "array.tif").read_bytes() == (tmp_path / "frames.tif").read_bytes()


@pytest.mark.parametrize("lazy", [False, True], ids=["array", "read by frame"])
@pytest.mark.parametrize("bad, dtype", [(2**33, np.uint64), (2**63 + 5, np.uint64), (-3, np.int64)])
def test_an_id_a_calibrated_tiff_cannot_hold_is_refused_and_nothing_written(tmp_path, lazy, bad, dtype):
    """The id and the accepted range are named; an earlier file at the path is kept as it was, and no temporary file
    is left (the stack read by frame meets the id on frame 1, after frame 0's plane went to the temporary file)."""
    labels = labels_with(bad, dtype)
    path = tmp_path / "labels.tif"
    path.write_bytes(b"the earlier export")
    frame = " on frame 1" if lazy else ""
    with pytest.raises(ValueError, match=rf"the labels hold id {bad}{frame}, which a calibrated labels TIFF cannot "
                                         r"hold: .* ids 0 to 4294967295 \(uint32"):
        save_labels_tiff(FramesOnly(labels) if lazy else labels, path, calibration=CALIBRATION)
    assert path.read_bytes() == b"the earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif"]
    # as the words say: without a calibration the labels are written in their own dtype, every id whole
    save_labels_tiff(labels, path)
    np.testing.assert_array_equal(tifffile.imread(path), labels)


@pytest.mark.parametrize("lazy", [False, True], ids=["array", "read by frame"])
def test_a_negative_id_of_64_bit_labels_is_refused_in_words_of_its_own(tmp_path, lazy):
    """int64 labels with id -3 and none over 65535 were refused in words about "an id over 65535" (M2, R1's finding);
    the words now name the negative id and what takes it (int32 / int16 labels are written with it)."""
    labels = np.zeros((3, 6, 8), np.int64)
    labels[:, 1:3, 1:4] = 7
    labels[1, 0, 0] = -3
    path = tmp_path / "labels.tif"
    frame = " on frame 1" if lazy else ""
    with pytest.raises(ValueError, match=rf"the labels hold id -3{frame}, which a calibrated labels TIFF cannot hold: "
                                         r"labels with a negative id are written as an OME-TIFF, .*int64 labels are "
                                         r"written there as uint32, ids 0 to 4294967295") as refused:
        save_labels_tiff(FramesOnly(labels) if lazy else labels, path, calibration=CALIBRATION)
    assert "65535" not in str(refused.value)
    assert not path.exists()
    save_labels_tiff(labels.astype(np.int32), path, calibration=CALIBRATION)  # as the words say
    np.testing.assert_array_equal(tifffile.imread(path), labels)
