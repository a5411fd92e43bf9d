"""Every subcommand is reachable through ``napari-sam2`` itself (the entry point users type)."""

from __future__ import annotations

import pytest

from napari_sam2.cli import main


@pytest.mark.parametrize("command", ["track", "evaluate", "batch"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"napari-sam2 {command}" in capsys.readouterr().out


def test_batch_without_stacks_is_a_usage_error(tmp_path, capsys):
    code = main(["batch", str(tmp_path / "nothing-here" / "*.tif"), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nothing-here" in err or "no stack" in err.lower()
