"""Which prompts CSV a batch stack takes (docs/batch.md): ``movie.csv`` / ``movie_prompts.csv`` beside ``movie.tif``,
and for an OME file ``movie.ome.tif`` both its output name's ``movie.csv`` and Python's stem ``movie.ome.csv``
(``movie.ome_prompts.csv``); two CSVs that differ are refused for that stack, naming both, not guessed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile

from napari_sam2.batch import batch
from napari_sam2.batch_inputs import find_prompts, prompt_candidates
from test_batch import MODEL, _write_stack

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A real in-process cluster: one worker, one thread."""
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as active:
        yield active


def _ome_movie(folder: Path, seed: int = 91) -> Path:
    """``folder/movie.ome.tif`` (an OME-TIFF of a 5-frame synthetic movie) and its prompts as ``movie.ome.csv``."""
    _write_stack(folder, "movie", seed=seed)
    image = tifffile.imread(folder / "movie.tif")
    (folder / "movie.tif").unlink()
    tifffile.imwrite(folder / "movie.ome.tif", image, ome=True, metadata={"axes": "TYX"})
    (folder / "movie.csv").rename(folder / "movie.ome.csv")
    return folder / "movie.ome.tif"


def test_an_ome_tifs_prompts_are_found_under_pythons_stem_too(client, tmp_path):
    """movie.ome.tif with movie.ome.csv (the name `<stem>.csv` gives where the stem is Python's, "movie.ome"): it
    failed with "no prompts CSV (looked for .../movie.csv, .../movie_prompts.csv)". Now it runs; its output folder is
    still "movie"."""
    stack = _ome_movie(tmp_path)
    assert [p.name for p in prompt_candidates(stack)] == ["movie.csv", "movie_prompts.csv", "movie.ome.csv",
                                                          "movie.ome_prompts.csv"]
    table = batch(stack, tmp_path / "out", client=client, progress=False, **MODEL)
    assert (table.loc[0, "name"], table.loc[0, "status"], table.loc[0, "error"]) == ("movie", "ok", "")
    assert int(table.loc[0, "objects"]) > 0
    (tmp_path / "movie.ome.csv").rename(tmp_path / "movie.ome_prompts.csv")
    assert find_prompts(stack) == tmp_path / "movie.ome_prompts.csv"


def test_two_different_prompts_csvs_for_one_stack_are_refused_naming_both(client, tmp_path):
    """movie.csv and movie.ome.csv beside movie.ome.tif with different rows: which one the user meant is not guessed
    (that stack fails naming both files; the others run). The same rows saved under both names are one CSV."""
    stack = _ome_movie(tmp_path)
    (tmp_path / "movie.csv").write_bytes((tmp_path / "movie.ome.csv").read_bytes())
    assert find_prompts(stack) == tmp_path / "movie.csv"  # the same content: no question
    rows = (tmp_path / "movie.csv").read_text().splitlines()
    (tmp_path / "movie.csv").write_text("\n".join(rows[:2]) + "\n")  # one object fewer
    _write_stack(tmp_path, "other", seed=92)
    table = batch([stack, tmp_path / "other.tif"], tmp_path / "out", client=client, progress=False, **MODEL)
    by_name = table.set_index("name")
    assert by_name.loc["other", "status"] == "ok"
    error = by_name.loc["movie", "error"]
    assert by_name.loc["movie", "status"] == "failed", error
    assert "2 different prompts CSVs for movie.ome.tif" in error, error
    assert str(tmp_path / "movie.csv") in error and str(tmp_path / "movie.ome.csv") in error, error
    assert not (tmp_path / "out" / "movie").exists()
