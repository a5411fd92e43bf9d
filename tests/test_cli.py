"""The command line and the scripting API on a synthetic time-lapse with the embedded demo model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2.api as api
from napari_sam2 import segment
from napari_sam2.cli import main, read_prompts
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.metrics import region_similarity
from sam2_model.synthetic import make_timelapse


def movie_and_prompts():
    movie = make_timelapse(num_frames=6, shape=(256, 256), seed=900_301)
    ids = clickable_objects(movie.labels[0])[:2]
    clicks = []
    for obj_id in ids:
        x, y = click_point(movie.labels[0] == obj_id)
        clicks.append((0, y, x, 1, obj_id))
    ys, xs = np.nonzero(movie.labels[0] == clickable_objects(movie.labels[0])[2])
    box = (0, ys.min(), xs.min(), ys.max(), xs.max(), 99)
    return movie, clicks, box


def test_cli_track_writes_the_same_labels_as_the_api_and_they_find_the_cells(tmp_path, capsys):
    movie, clicks, box = movie_and_prompts()
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    rows = ["frame,obj_id,y,x,label,y1,x1"] + [f"{f},{o},{y},{x},{lab},," for f, y, x, lab, o in clicks]
    rows.append(f"{box[0]},{box[5]},{box[1]},{box[2]},,{box[3]},{box[4]}")
    (tmp_path / "prompts.csv").write_text("\n".join(rows) + "\n")
    output = tmp_path / "new" / "folder" / "labels.tif"  # folders that do not exist yet are created
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(output), "--device", "cpu"])
    assert code == 0
    assert sorted(p.name for p in output.parent.iterdir()) == ["labels.tif"]  # no temporary file left behind
    written = tifffile.imread(output)
    seen = []
    expected = segment(movie.image, clicks, [box], device="cpu", progress=lambda done, total: seen.append((done, total)))
    assert written.shape == movie.image.shape
    np.testing.assert_array_equal(written, expected)
    assert seen[-1] == (6, 6)  # forward from frame 0 (nothing lies before it)
    assert set(np.unique(expected)) == {0, clicks[0][4], clicks[1][4], 99}
    box_truth = movie.labels[0] == movie.labels[0][int(box[1] + box[3]) // 2, int(box[2] + box[4]) // 2]
    for f, y, x, _, obj_id in clicks:  # the demo model really segments the clicked cells
        assert region_similarity(expected[0] == obj_id, movie.labels[0] == obj_id) > 0.7
    assert region_similarity(expected[0] == 99, box_truth) > 0.6


def test_cli_reports_bad_prompt_files(tmp_path, capsys):
    movie, _, _ = movie_and_prompts()
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    (tmp_path / "prompts.csv").write_text("t,id\n1,2\n")
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "out.tif")])
    assert code == 2 and "header must name at least frame,obj_id,y,x" in capsys.readouterr().err
    (tmp_path / "prompts.csv").write_text("frame,obj_id,y,x,label,y1,x1\n0,1,300,300,,400,400\n0,99999999999,20,20,1,,\n")
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "out.tif")])
    assert code == 2 and "line 3: obj_id must be a positive integer up to 4294967295" in capsys.readouterr().err
    (tmp_path / "prompts.csv").write_text("frame,obj_id,y,x,label,y1,x1\n0,1,300,300,,400,400\n")
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "out.tif")])
    assert code == 2 and "line 2: the box from (y=300, x=300) to (y=400, x=400) lies wholly outside the 256 x 256" \
        in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists()
    assert not (tmp_path / "out.tif").exists()


def write_case(tmp_path, rows, stack=None):
    """A 4-frame stack and a prompts CSV of ``rows`` (lines after the header)."""
    if stack is None:
        stack = make_timelapse(num_frames=4, shape=(96, 96), seed=900_302).image
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    (tmp_path / "prompts.csv").write_text("\n".join(rows) + "\n")
    return ["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "--device", "cpu"]


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if the CLI reaches model building (its checks must come first)."""

    def tripwire(*args, **kwargs):
        raise AssertionError("build_model was called before the inputs and output were checked")

    monkeypatch.setattr(api.sm, "build_model", tripwire)


def test_headers_are_case_insensitive_and_labels_must_be_0_or_1(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("Frame,Obj_ID,Y,X,Label,Y1,X1,note\n0,3,10.5,20,0,,,neg\n\n2,4,1,2,,5,6,box\n")
    assert read_prompts(path) == ([(0, 10.5, 20.0, 0, 3)], [(2, 1.0, 2.0, 5.0, 6.0, 4)])
    path.write_text("frame,obj_id,y,x,label\n0,1,10,20,1\n0,1,12,20,2\n")
    with pytest.raises(ValueError, match=r"p.csv, line 3: label must be 1 \(positive\) or 0 \(negative\), got '2'"):
        read_prompts(path)
    path.write_text("frame,obj_id,y,x,y1\n0,1,10,20,30\n")
    with pytest.raises(ValueError, match=r"line 2: a box needs both y1 and x1"):
        read_prompts(path)


@pytest.mark.parametrize("rows, message", [
    (["frame,obj_id,y,x,label", "0,1,40,40,2"], r"prompts.csv, line 2: label must be 1 \(positive\) or 0"),
    (["frame,obj_id,y,x,label", "0,1,40,40,1", "9,1,40,40,1"], r"prompts.csv, line 3: frame 9 is not one of .* 0..3"),
    (["frame,obj_id,y,x", "0,1,400,40"], r"prompts.csv, line 2: \(y=400, x=40\) lies outside the 96 x 96"),
    (["frame,obj_id,y,x"], r"prompts.csv holds no prompts"),
])
def test_bad_prompts_fail_before_any_model_work_naming_the_line(tmp_path, capsys, no_model, rows, message):
    code = main(write_case(tmp_path, rows) + ["-o", str(tmp_path / "out" / "labels.tif")])
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert "propagating" not in err  # no progress bar before the error
    assert not (tmp_path / "out").exists()  # nothing created for a run that cannot start


def test_an_unwritable_output_fails_at_once(tmp_path, capsys, no_model):
    (tmp_path / "a_file").write_text("not a folder")
    code = main(write_case(tmp_path, ["frame,obj_id,y,x", "0,1,40,40"]) + ["-o", str(tmp_path / "a_file" / "l.tif")])
    assert code == 2 and "-o/--output" in capsys.readouterr().err
    code = main(write_case(tmp_path, ["frame,obj_id,y,x", "0,1,40,40"]) + ["-o", str(tmp_path / "labels.png")])
    assert code == 2 and "must name a .tif or .tiff file" in capsys.readouterr().err


def test_a_model_error_prints_no_progress_bar_and_writes_nothing(tmp_path, capsys):
    output = tmp_path / "labels.tif"
    code = main(write_case(tmp_path, ["frame,obj_id,y,x", "0,1,40,40"])
                + ["-o", str(output), "--checkpoint", str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint file not found" in err and "propagating" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.csv", "stack.tif"]


def test_4d_stacks_with_axis_channel_and_fix(tmp_path, capsys):
    movie = make_timelapse(num_frames=3, shape=(96, 96), seed=900_302)
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    rows = ["frame,obj_id,y,x", f"0,{obj_id},{y},{x}"]
    zt = np.stack([np.zeros_like(movie.image), movie.image], axis=0)  # (Z, T, Y, X): propagate axis 1 at z = 1
    args = write_case(tmp_path, rows, zt)
    assert main(args + ["-o", str(tmp_path / "z.tif"), "--axis", "1", "--fix", "0=1"]) == 0
    by_z = tifffile.imread(tmp_path / "z.tif")
    assert by_z.shape == zt.shape and not by_z[0].any()
    assert region_similarity(by_z[1, 0] == obj_id, movie.labels[0] == obj_id) > 0.7
    np.save(tmp_path / "tcyx.npy", np.stack([np.zeros_like(movie.image), movie.image], axis=1))  # (T, C, Y, X)
    args[1] = str(tmp_path / "tcyx.npy")
    assert main(args + ["-o", str(tmp_path / "c.tif"), "--channel-axis", "1", "--channel", "1"]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), by_z[1])
    code = main(args + ["-o", str(tmp_path / "bad.tif")])  # the channel axis not said: the error names the options
    err = capsys.readouterr().err
    assert code == 2 and "--fix AXIS=INDEX" in err and "--channel-axis=1" in err


def test_contrast_limits_option(tmp_path, capsys):
    movie = make_timelapse(num_frames=3, shape=(96, 96), seed=900_302)
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    args = write_case(tmp_path, ["frame,obj_id,y,x", f"0,{obj_id},{y},{x}"], movie.image)
    assert main(args + ["-o", str(tmp_path / "c.tif"), "--contrast-limits", "100", "30000"]) == 0
    expected = segment(movie.image, [(0, y, x, 1, obj_id)], device="cpu", contrast_limits=(100, 30000))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), expected)
    assert main(args + ["-o", str(tmp_path / "bad.tif"), "--contrast-limits", "5", "5"]) == 2
    assert "--contrast-limits must be (low, high) finite numbers with low < high" in capsys.readouterr().err
    assert not (tmp_path / "bad.tif").exists()


def test_smooth_option(tmp_path, capsys):
    movie = make_timelapse(num_frames=3, shape=(96, 96), seed=900_302)
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    args = write_case(tmp_path, ["frame,obj_id,y,x", f"0,{obj_id},{y},{x}"], movie.image)
    assert main(args + ["-o", str(tmp_path / "s.tif"), "--smooth", "2"]) == 0
    expected = segment(movie.image, [(0, y, x, 1, obj_id)], device="cpu", smooth=2.0)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s.tif"), expected)
    assert main(args + ["-o", str(tmp_path / "bad.tif"), "--smooth", "-3"]) == 2
    assert '--smooth must be "auto", "off" or a number of pixels >= 0, got \'-3\'' in capsys.readouterr().err
    assert not (tmp_path / "bad.tif").exists()


def test_rgb_stack_through_the_cli(tmp_path):
    movie = make_timelapse(num_frames=2, shape=(96, 96), seed=900_302)
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    rgb = np.repeat((movie.image // 256).astype(np.uint8)[..., None], 3, axis=-1)
    tifffile.imwrite(tmp_path / "stack.tif", rgb, photometric="rgb")
    (tmp_path / "prompts.csv").write_text(f"frame,obj_id,y,x\n0,{obj_id},{y},{x}\n")
    assert main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "--device", "cpu",
                 "-o", str(tmp_path / "labels.tif")]) == 0
    labels = tifffile.imread(tmp_path / "labels.tif")
    assert labels.shape == movie.image.shape
    assert region_similarity(labels[0] == obj_id, movie.labels[0] == obj_id) > 0.7


def test_a_failed_write_leaves_the_old_output_and_no_temporary_file(tmp_path, monkeypatch):
    from napari_sam2 import export

    output = tmp_path / "labels.tif"
    output.write_bytes(b"the previous run's labels")

    def broken_imwrite(path, data, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half a TIFF")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.tifffile, "imwrite", broken_imwrite)
    with pytest.raises(OSError, match="No space left"):
        export.save_labels_tiff(np.zeros((2, 4, 4), np.uint32), output)
    assert output.read_bytes() == b"the previous run's labels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif"]


def test_auto_outputs_with_prompts_are_refused_not_ignored(tmp_path, capsys, no_model):
    args = write_case(tmp_path, ["frame,obj_id,y,x", "0,1,40,40"])
    code = main(args + ["-o", str(tmp_path / "labels.tif"), "--table", str(tmp_path / "t.csv"),
                        "--ctc", str(tmp_path / "ctc")])
    err = capsys.readouterr().err
    assert code == 2 and "--ctc, --table: outputs of --auto only" in err and "objects.csv" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.csv", "stack.tif"]  # nothing written


def test_object_window_option(tmp_path, capsys):
    movie = make_timelapse(num_frames=3, shape=(96, 96), seed=900_302)
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    args = write_case(tmp_path, ["frame,obj_id,y,x", f"0,{obj_id},{y},{x}"], movie.image)
    assert main(args + ["-o", str(tmp_path / "a.tif")]) == 0  # auto by default: these cells fill a 96 px frame
    assert "--object-window auto: off (the objects of frame 0 are not small against it)" in capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"),
                                  segment(movie.image, [(0, y, x, 1, obj_id)], device="cpu", object_window="off"))
    assert main(args + ["-o", str(tmp_path / "w.tif"), "--object-window", "48"]) == 0
    expected = segment(movie.image, [(0, y, x, 1, obj_id)], device="cpu", object_window=48)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "w.tif"), expected)
    assert main(args + ["-o", str(tmp_path / "bad.tif"), "--object-window", "4"]) == 2
    assert "--object-window must be a window side in frame pixels (at least 8" in capsys.readouterr().err
    assert not (tmp_path / "bad.tif").exists()


def test_one_image_is_segmented_as_a_stack_of_one_frame(tmp_path, capsys):
    """A (Y, X) TIFF with prompts on frame 0 gives a (Y, X) label image: what segment() gives for that one frame."""
    movie = make_timelapse(num_frames=1, shape=(96, 96), seed=900_302)
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    args = write_case(tmp_path, ["frame,obj_id,y,x", f"0,{obj_id},{y},{x}"], movie.image[0])
    assert main(args + ["-o", str(tmp_path / "one.tif")]) == 0
    labels = tifffile.imread(tmp_path / "one.tif")
    assert labels.shape == (96, 96) and "((96, 96) labels, 1 object)" in capsys.readouterr().out
    np.testing.assert_array_equal(labels, segment(movie.image[:1], [(0, y, x, 1, obj_id)], device="cpu")[0])


@pytest.mark.parametrize("option, message", [
    (["--cell-diameter", "40", "10"], "--cell-diameter MIN MAX: the smallest and largest cell diameter in pixels, "
                                      "0 < MIN <= MAX; got 40 10"),
    (["--redetect-every", "0"], "--redetect-every: look for new cells every K frames, K >= 1; got 0")])
def test_auto_detection_options_are_checked_in_the_commands_words_first(tmp_path, capsys, option, message):
    movie = make_timelapse(num_frames=2, shape=(64, 64), seed=900_302)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    code = main(["track", str(tmp_path / "stack.tif"), "--auto", "--table", str(tmp_path / "t.csv")] + option)
    assert code == 2 and message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]  # nothing read, nothing written


def test_an_object_with_no_pixel_is_named(tmp_path, capsys):
    """Two objects clicked on one cell: one mask wins every pixel and the other object vanished without a word."""
    movie, clicks, _ = movie_and_prompts()
    tifffile.imwrite(tmp_path / "stack.tif", movie.image[:2], photometric="minisblack")
    frame, y, x, _, obj_id = clicks[0]
    (tmp_path / "p.csv").write_text(f"frame,obj_id,y,x,label\n0,1,{y},{x},1\n0,2,{y},{x},1\n")
    assert main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "p.csv"), "-o",
                 str(tmp_path / "out.tif"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    labels = tifffile.imread(tmp_path / "out.tif")
    gone = sorted({1, 2} - set(np.unique(labels).tolist()))
    assert gone and f"object {gone[0]} of the prompts has no pixel in the labels" in captured.err


def test_sam2_train_help_explains_the_command_its_workflows_and_every_option(capsys, monkeypatch):
    """sam2-train --help: what the command does, where a run's files go, fine-tune / resume examples, and for every
    option what it means and its default (not a bare "(default: X)")."""
    import dataclasses
    import sys

    from sam2_model.train.__main__ import parse_args
    from sam2_model.train.loop import TrainSettings

    monkeypatch.setattr(sys, "argv", ["sam2-train"])
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert text.startswith("usage: sam2-train")
    assert "fine-tune one on your own labelled time-lapse" in flat
    for output in ("last.pt", "history.csv", "weights.pt", "weights.json"):
        assert output in flat, output
    assert "workflows:" in text and "--stack movie.tif --labels movie_labels.tif" in text
    assert "resume: run the same command again" in flat and "--checkpoint runs/mine/weights.pt" in flat
    options = re.findall(r"^  (--[a-z-]+)(?: [A-Z_]+)?\s*(.*?)(?=^  --|^  -h|\Z)", text.split("options:")[1]
                         .split("workflows:")[0], flags=re.M | re.S)
    helps = {option: " ".join(body.split()) for option, body in options}
    for field in dataclasses.fields(TrainSettings):
        option = "--" + field.name.replace("_", "-")
        assert option in helps, option
        assert not helps[option].startswith("(default"), f"{option} says only its default: {helps[option]}"
        assert helps[option].count("(default:") == (field.name != "out"), helps[option]  # --out: (required)


MSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc" / "01"


@pytest.mark.skipif(not MSC.is_dir(), reason="the real MSC time-lapse is not here")
def test_track_measures_auto_sizes_on_the_channel_it_segments(tmp_path, capsys):
    """`track --channel-axis 1 --channel 0 --image-size auto` segments as the channel alone would: the "auto" input
    size and object windows are measured on that channel (every channel mixed, the second one mirrored, picked 512 px
    and 128 px windows instead of 256 px and whole frames, and other labels)."""
    stack = np.stack([tifffile.imread(MSC / f"t{t:03d}.tif")[:256, 30:286] for t in range(2)])
    np.save(tmp_path / "alone.npy", stack)
    np.save(tmp_path / "two.npy", np.stack([stack, stack[:, ::-1]], axis=1))  # (T, C, Y, X)
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x,label\n0,1,120,85,1\n")
    common = ["--prompts", str(tmp_path / "p.csv"), "--device", "cpu", "--image-size", "auto"]
    assert main(["track", str(tmp_path / "alone.npy"), "-o", str(tmp_path / "alone.tif")] + common) == 0
    assert main(["track", str(tmp_path / "two.npy"), "--channel-axis", "1", "--channel", "0", "-o",
                 str(tmp_path / "two.tif")] + common) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "two.tif"), tifffile.imread(tmp_path / "alone.tif"))
    assert "1 object)" in capsys.readouterr().out


def test_frame_as_seen_is_the_channel_segmented():
    from napari_sam2.image_size import frame_as_seen

    frame = np.arange(24).reshape(2, 4, 3)
    np.testing.assert_array_equal(frame_as_seen(frame, {"channel": 1}), frame[..., 1])
    np.testing.assert_array_equal(frame_as_seen(frame, {"composite": "max"}), frame[..., 2])
    np.testing.assert_array_equal(frame_as_seen(frame, {"composite": "mean"}), frame[..., 1])
    assert frame_as_seen(frame, {}).shape == (2, 4, 3)  # colour (or grey) as it is


def test_help_examples_are_commands_the_parser_takes():
    """Every example line of `napari-sam2 --help` and `track --help` parses as written (options that exist, values of
    the right kind), so a user can copy them."""
    import shlex

    from napari_sam2.cli import TOP_EXAMPLES, TRACK_EXAMPLES, build_parser

    lines = [line.split("#")[0].strip() for line in (TOP_EXAMPLES + "\n" + TRACK_EXAMPLES).splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("napari-sam2 ") and "COMMAND" not in line]
    assert len(commands) >= 8
    for argv in commands:
        build_parser().parse_args(argv)  # SystemExit (a test failure) on an unknown option or a bad value


def test_labels_tiffs_record_the_axes_of_the_stack(tmp_path):
    """The labels TIFF says which axes it has (TZYX for a TZYX stack; ZYX for --auto through z), where the input
    says: they came back as QQYX, so Fiji and napari took a TZYX result for unknown axes."""
    movie = make_timelapse(num_frames=4, shape=(128, 128), seed=900_301)
    x, y = click_point(movie.labels[0] == clickable_objects(movie.labels[0])[0])
    (tmp_path / "p.csv").write_text(f"frame,obj_id,y,x,label\n0,1,{y},{x},1\n")
    tzyx = np.stack([movie.image, movie.image[:, ::-1]], axis=1)
    tifffile.imwrite(tmp_path / "tzyx.tif", tzyx, metadata={"axes": "TZYX"})
    tifffile.imwrite(tmp_path / "zyx.tif", movie.image, metadata={"axes": "ZYX"})
    assert main(["track", str(tmp_path / "tzyx.tif"), "--fix", "1=0", "--prompts", str(tmp_path / "p.csv"), "-o",
                 str(tmp_path / "a.tif"), "--device", "cpu"]) == 0
    assert main(["track", str(tmp_path / "zyx.tif"), "--auto", "--cell-diameter", "6", "40", "-o",
                 str(tmp_path / "b.tif"), "--device", "cpu"]) == 0
    with tifffile.TiffFile(tmp_path / "a.tif") as a, tifffile.TiffFile(tmp_path / "b.tif") as b:
        assert (a.series[0].axes, a.series[0].shape) == ("TZYX", tzyx.shape)
        assert (b.series[0].axes, b.series[0].shape) == ("ZYX", movie.image.shape)


def test_labels_of_a_stack_without_axis_letters_are_written_tyx(tmp_path):
    """A plain (T, Y, X) TIFF (tifffile names its first axis Q): `track -o` wrote the labels as QYX while `batch` wrote
    the same stack's labels as TYX; the axis segmented through is T in both now."""
    movie = make_timelapse(num_frames=5, shape=(96, 96), seed=900_301)
    x, y = click_point(movie.labels[0] == clickable_objects(movie.labels[0])[0])
    (tmp_path / "p.csv").write_text(f"frame,obj_id,y,x,label\n0,1,{y},{x},1\n")
    tifffile.imwrite(tmp_path / "plain.tif", movie.image)
    with tifffile.TiffFile(tmp_path / "plain.tif") as plain:
        assert plain.series[0].axes == "QYX"
    assert main(["track", str(tmp_path / "plain.tif"), "--prompts", str(tmp_path / "p.csv"), "-o",
                 str(tmp_path / "a.tif"), "--device", "cpu"]) == 0
    with tifffile.TiffFile(tmp_path / "a.tif") as a:
        assert (a.series[0].axes, a.series[0].shape) == ("TYX", movie.image.shape)
