"""Volumes (Z, Y, X) read through z, from the command line and the scripting API, as a new user does it (E3 findings 2
and 6): "auto" input sizes and object windows are measured on the prompted slice, not on slice 0 (an empty slice
above the sample, whose noise measures as tiny objects), and automatic tracking through z looks for no divisions
unless asked. The real demo model with its embedded weights; small synthetic volumes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_sam2 import segment
from napari_sam2.api import resolve_axes
from napari_sam2.cli import main
from napari_sam2.export import Calibration
from napari_sam2.image_size import auto_image_size
from sam2_model.synth.microscopy import make_microscopy_timelapse

CENTRES = [(y, x) for y in (48, 128, 208) for x in (48, 128, 208)]


def nuclei_volume(slices: int = 6, side: int = 256, empty: int = 2, seed: int = 0):
    """(image, labels), both (slices, side, side): nine nuclei ~19 px wide on the slices from ``empty`` on (narrower
    towards both ends), Gaussian noise alone on the ``empty`` slices above them, as in a z-stack that starts above the
    sample."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    labels = np.zeros((slices, side, side), np.uint16)
    for z in range(empty, slices):
        radius = 10.0 - 1.5 * abs(z - (empty + slices - 1) / 2)
        for obj_id, (cy, cx) in enumerate(CENTRES, 1):
            labels[z][(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = obj_id
    image = ndimage.gaussian_filter((labels > 0) * 600.0, (0, 1.2, 1.2)) + 100 + rng.normal(0, 25, labels.shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def spheres_volume():
    """The explorer's ZYX volume (/tmp/e3/make_data.py): four nuclei, spheres of 6-7.5 um radius, voxels 2 x 0.3 x 0.3
    um, 16 x 128 x 128; (image uint16, labels)."""
    rng = np.random.default_rng(0)
    zz, yy, xx = np.meshgrid(np.arange(16) * 2.0, np.arange(128) * 0.3, np.arange(128) * 0.3, indexing="ij")
    labels = np.zeros(zz.shape, np.uint16)
    for obj_id, ((cz, cy, cx), radius) in enumerate(zip([(14, 10, 10), (16, 28, 12), (12, 20, 28), (18, 30, 30)],
                                                        [7, 6.5, 7.5, 6]), 1):
        inside = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        labels[inside & (labels == 0)] = obj_id
    image = ndimage.gaussian_filter((labels > 0) * 600.0 + 100, (0.7, 1.2, 1.2)) + rng.normal(0, 25, labels.shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def clicks_on(labels: np.ndarray, z: int):
    """One positive click at the centre of each nucleus on slice ``z``: rows (frame, y, x, label, obj_id)."""
    return [(z, cy, cx, 1, obj_id) for obj_id, (cy, cx) in enumerate(CENTRES, 1) if labels[z, cy, cx] == obj_id]


@pytest.fixture(scope="module")
def volume_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zstack")
    image, labels = nuclei_volume()
    tifffile.imwrite(folder / "zyx.tif", image, imagej=True, metadata={"axes": "ZYX"})
    rows = clicks_on(labels, 3)
    (folder / "z3.csv").write_text("frame,obj_id,y,x,label\n" + "".join(f"{f},{o},{y},{x},{l}\n"
                                                                       for f, y, x, l, o in rows))
    return image, labels, folder


def test_the_noise_of_an_empty_top_slice_measures_as_tiny_objects(volume_files):
    """The trap the fix avoids: slice 0 (noise) asks for 512 px, the nuclei's slice for the demo's own 256."""
    image, _, _ = volume_files
    assert auto_image_size(image[0], "demo").image_size == 512
    assert auto_image_size(image[3], "demo").image_size == 256


def test_segment_measures_auto_on_the_prompted_slice(volume_files):
    image, labels, _ = volume_files
    clicks = clicks_on(labels, 3)
    kwargs = dict(model="demo", device="cpu", direction="forward")
    auto = segment(image, clicks, image_size="auto", **kwargs)  # measured on slice 3: 256 (slice 0 said 512)
    explicit = segment(image, clicks, image_size=256, **kwargs)
    np.testing.assert_array_equal(auto, explicit)
    assert set(np.unique(auto[3])) - {0} == set(range(1, 10))


def test_cli_measures_auto_on_the_prompted_slice_and_says_which(volume_files, capsys):
    _, _, folder = volume_files
    args = ["track", str(folder / "zyx.tif"), "--prompts", str(folder / "z3.csv"), "-o", str(folder / "l.tif"),
            "--image-size", "auto", "--checkpoint", str(folder / "missing.pt")]  # stops once the sizes are printed
    assert main(args) == 2
    printed = capsys.readouterr().out
    assert "--image-size auto: input size 256 px (objects ~" in printed and "measured on frame 3)" in printed, printed
    assert "--object-window auto: off (the objects of frame 3 are not small against it)" in printed, printed
    assert not (folder / "l.tif").exists()


def test_a_time_lapse_keeps_the_size_it_had(tmp_path, capsys):
    """A time-lapse whose frame 0 is fine: the CLI's "auto" picks the size it picked before (frame 0's), with the
    clicks on frame 0 (measured there, as before) or on a later frame."""
    movie = make_microscopy_timelapse(11, shape=(256, 256), num_frames=3, cell_type="nuclei", cell_size=8,
                                      density=0.1, divisions=False, enter_leave=False, dtype="uint8")
    before = auto_image_size(movie.image[0], "demo").image_size  # what every run measured until now
    assert before == 384  # ~7 px nuclei: not the preset size, so the check means something
    tifffile.imwrite(tmp_path / "movie.tif", movie.image, photometric="minisblack")
    for frame in (0, 2):
        obj = next(i for i in np.unique(movie.labels[frame]) if i and (movie.labels[frame] == i).sum() > 20)
        ys, xs = np.nonzero(movie.labels[frame] == obj)
        (tmp_path / "p.csv").write_text(f"frame,obj_id,y,x,label\n{frame},1,{np.median(ys)},{np.median(xs)},1\n")
        assert main(["track", str(tmp_path / "movie.tif"), "--prompts", str(tmp_path / "p.csv"), "-o",
                     str(tmp_path / "l.tif"), "--image-size", "auto", "--checkpoint", str(tmp_path / "no.pt")]) == 2
        printed = capsys.readouterr().out
        assert f"--image-size auto: input size {before} px" in printed and f"on frame {frame})" in printed, printed


def test_prompted_frame_prefers_positive_prompts_and_boxes():
    from napari_sam2.api import prompted_frame

    assert prompted_frame() == 0
    assert prompted_frame([(5, 1, 1, 0, 1), (7, 1, 1, 1, 1)]) == 7  # a negative click does not start an object
    assert prompted_frame([(7, 1, 1, 1, 1)], [(4, 0, 0, 9, 9, 2)]) == 4
    assert prompted_frame([(6, 1, 1, 0, 1)]) == 6


def test_frames_are_z_and_the_divisions_rule():
    from napari_sam2.api import auto_divisions, frames_are_z

    zyx = np.zeros((4, 16, 16), np.uint8)
    layout = resolve_axes(zyx.shape).layout

    class Tiff:  # what open_stack gives for a TIFF: an array-like with the file's axis letters
        def __init__(self, axes):
            self.axes, self.shape = axes, (4, 16, 16)

    assert frames_are_z(Tiff("ZYX"), layout) == "the stack's axes ZYX say so"
    assert frames_are_z(Tiff("TYX"), layout) is None and frames_are_z(zyx, layout) is None
    zarr_like = Calibration((0.3, 0.3), "micrometer", 2.0, "micrometer")  # an OME-Zarr's z axis in micrometers
    assert frames_are_z(zyx, layout, zarr_like) == "the file gives their step in micrometer"
    assert frames_are_z(zyx, layout, Calibration((0.3, 0.3), "micrometer", 60.0, "second")) is None
    assert auto_divisions(None, None) == (True, "")  # time: on, as before
    assert auto_divisions(True, "the stack's axes ZYX say so") == (True, "")  # asked for: kept
    assert auto_divisions(False, None) == (False, "")
    on, said = auto_divisions(None, "the stack's axes ZYX say so", "--divisions")
    assert not on and said.startswith("divisions off: the frames are z slices (the stack's axes ZYX say so)")
    assert "--divisions" in said


def test_track_auto_through_z_looks_for_no_divisions_unless_asked(tmp_path, capsys):
    """E3 finding 6: four spheres tracked through z gave "1 division" (a nucleus "divides" going up z)."""
    image, _ = spheres_volume()
    stack = tmp_path / "zyx.tif"
    tifffile.imwrite(stack, image, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
    args = ["track", str(stack), "--auto", "--cell-diameter", "20", "60", "--device", "cpu"]
    assert main(args + ["--table", str(tmp_path / "z.csv")]) == 0
    printed = capsys.readouterr().out
    assert "divisions off: the frames are z slices (the stack's axes ZYX say so)" in printed, printed
    assert "(0 divisions)" in printed and "divided" not in (tmp_path / "z.csv").read_text()

    assert main(args + ["--divisions", "--table", str(tmp_path / "asked.csv")]) == 0  # asked for: looked for
    printed = capsys.readouterr().out
    assert "divisions off" not in printed and "(1 division)" in printed, printed

    with pytest.raises(SystemExit):  # argparse: not both
        main(args + ["--divisions", "--no-divisions", "--table", str(tmp_path / "both.csv")])
    assert "not allowed with argument" in capsys.readouterr().err

    from napari_sam2 import track_cells

    with pytest.warns(UserWarning, match="divisions off: the frames are z slices"):
        result = track_cells(str(stack), cell_diameter=(20, 60), device="cpu")
    assert not result.lineage.divisions()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for (or a plain array, not known to be z): no warning
        assert track_cells(str(stack), cell_diameter=(20, 60), device="cpu", divisions=True).lineage.divisions()
