"""``napari-sam2 track --auto`` (A1, s56): it says which files it wrote, in the prompted ``track``'s words
(``wrote PATH (...)``); Ctrl-C during a long run keeps the frames finished, written all or nothing as the result of a
shorter movie, says so loudly and exits 130 (before: "interrupted; nothing was written" after minutes of tracking);
the blob search's 2 px minimum has one home, ``sam2_model.seeding.MIN_BLOB_DIAMETER``.

Real demo model on a small synthetic movie; Ctrl-C is a KeyboardInterrupt raised from the command's progress bar once
a few frames are done (where Python raises it on SIGINT: between the model's pieces of work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import tqdm

from napari_sam2.cli import main
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import check_ctc, read_ctc

FRAMES = 6


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    movie = make_timelapse(num_frames=FRAMES, shape=(64, 64), num_cells=3, seed=561)
    path = tmp_path_factory.mktemp("a1") / "movie.tif"
    tifffile.imwrite(path, movie.image)
    return path


def ctrl_c_after(frames: int):
    """A progress bar that raises KeyboardInterrupt (Ctrl-C) when it is told ``frames`` frames are done (0: at the
    first word on the work inside frame 0)."""

    class Bar(tqdm.tqdm):
        def update(self, n=1):
            if self.n + n >= frames:
                raise KeyboardInterrupt
            return super().update(n)

        def set_postfix_str(self, s="", refresh=True):
            if frames == 0 and s:
                raise KeyboardInterrupt
            return super().set_postfix_str(s, refresh)

    return Bar


def leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_auto_says_what_it_wrote_in_the_prompted_commands_words(stack: Path, tmp_path: Path, capsys) -> None:
    ctc, table, labels = tmp_path / "res", tmp_path / "tracks.csv", tmp_path / "labels.tif"
    code = main(["track", str(stack), "--auto", "--device", "cpu", "--ctc", str(ctc), "--table", str(table),
                 "-o", str(labels)])
    out = capsys.readouterr().out
    assert code == 0
    tracks = len(read_ctc(ctc)[1])
    assert f"wrote {labels} (({FRAMES}, 64, 64) labels, {tracks} tracks)" in out
    assert f"wrote {table} (tracks table, {tracks} tracks)" in out
    assert (f"wrote {ctc} (Cell Tracking Challenge result: {FRAMES} mask files and res_track.txt, {tracks} tracks)"
            in out)


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_ctrl_c_writes_the_frames_finished_as_a_shorter_movie_and_exits_130(stack: Path, tmp_path: Path, capsys,
                                                                             monkeypatch, backward: bool) -> None:
    monkeypatch.setattr(tqdm, "tqdm", ctrl_c_after(3))  # frames 0-2 (backward: 5-3) finished, then Ctrl-C
    ctc, labels_path = tmp_path / "res", tmp_path / "out" / "labels.tif"
    way = ["--start-frame", str(FRAMES - 1), "--direction", "backward"] if backward else []
    code = main(["track", str(stack), "--auto", "--device", "cpu", "--ctc", str(ctc), "-o", str(labels_path), *way])
    captured = capsys.readouterr()
    assert code == 130
    assert "nothing was written" not in captured.err
    labels, lineage = read_ctc(ctc)
    check_ctc(labels, lineage)
    written = tifffile.imread(labels_path)
    if backward:  # every frame, as a whole backward run writes them; those not reached empty
        assert "stopped at frame 2 of 0-5: wrote frames 0-5, frames 0-2 empty (not tracked)" in captured.err
        assert written.shape == (FRAMES, 64, 64) and not written[:3].any() and all(written[t].any() for t in (3, 4, 5))
    else:  # a shorter movie: frames 0-2
        assert "stopped at frame 3 of 0-5: wrote frames 0-2;" in captured.err
        assert written.shape == (3, 64, 64) and all(written[t].any() for t in range(3))
    np.testing.assert_array_equal(np.asarray(labels), written)  # one result in every output
    assert f"wrote {ctc} (Cell Tracking Challenge result: {len(written)} mask files" in captured.out
    assert leftovers(ctc.parent) == [] and leftovers(labels_path.parent) == []  # no staging files


def test_ctrl_c_before_any_frame_is_finished_writes_nothing(stack: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(tqdm, "tqdm", ctrl_c_after(0))
    ctc = tmp_path / "res"
    assert main(["track", str(stack), "--auto", "--device", "cpu", "--ctc", str(ctc)]) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    assert not ctc.exists() or not any(ctc.iterdir())


def test_the_blob_minimum_has_one_home() -> None:
    from napari_sam2 import _cli_auto
    from sam2_model import seeding
    from sam2_model.tracking import divisions

    assert _cli_auto.MIN_BLOB_DIAMETER == seeding.MIN_BLOB_DIAMETER == 2.0
    assert not hasattr(divisions, "BLOB_MIN_DIAMETER")
    source = Path(_cli_auto.__file__).read_text()
    assert "MIN_BLOB_DIAMETER = " not in source  # read from seeding, not repeated
