"""The training command on a run folder it has used: a finished run is left as it is, a run never resumes under other
settings (weights.json records the settings the weights trained with), more steps extend it."""

from __future__ import annotations

import json

from sam2_model.train.__main__ import main as train_main


def test_the_command_again_on_a_finished_run_changes_nothing_and_other_settings_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    command = ["--out", str(run), "--image-size", "64", "--clip-len", "2", "--clips-per-step", "1",
               "--max-objects", "2", "--warmup-steps", "1", "--lr", "1e-4"]
    assert train_main(command + ["--steps", "1"]) == 0
    recorded = (run / "weights.json").read_text()
    capsys.readouterr()
    assert train_main(command + ["--steps", "1"]) == 0  # the same command again: nothing to do
    assert f"nothing to do: {run} holds a finished run of 1 steps" in capsys.readouterr().err
    assert (run / "weights.json").read_text() == recorded
    changed = list(command)
    changed[changed.index("--lr") + 1] = "5e-4"
    changed[changed.index("--clip-len") + 1] = "3"
    assert train_main(changed + ["--steps", "2"]) == 2  # other settings: refused before anything is written
    assert "is a run with clip_len 2 (not 3), lr 0.0001 (not 0.0005)" in capsys.readouterr().err
    assert (run / "weights.json").read_text() == recorded
    assert train_main(command + ["--steps", "2"]) == 0  # more steps, the same settings: the run goes on
    metadata = json.loads((run / "weights.json").read_text())
    assert metadata["steps"] == 2 and metadata["settings"]["lr"] == 1e-4 and metadata["settings"]["clip_len"] == 2
    assert [row.split(",")[2] for row in (run / "history.csv").read_text().splitlines()[1:]] == ["0.0001"] * 2
