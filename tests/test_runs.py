"""The one resume mechanism of every command's output folder (colortrack.io.runs)."""

import json
import os

import pytest

from colortrack.errors import InputError
from colortrack.io.runs import RunFolder, input_fingerprint, output_folder


def test_a_run_is_finished_only_with_its_configuration_and_every_output(tmp_path):
    run = RunFolder.open(tmp_path / "out", {"method": "model", "sizes": (1, 2)})
    outputs = [run.path / "a.png", run.path / "b.png"]
    assert not run.finished(outputs)  # no config.json yet
    run.start_clean([])
    assert json.loads(run.config_path.read_text()) == {"method": "model", "sizes": [1, 2]}
    outputs[0].write_bytes(b"a")
    assert not run.finished(outputs)  # one output missing
    outputs[1].write_bytes(b"b")
    assert run.finished(outputs)
    assert not RunFolder.open(run.path, {"method": "flow", "sizes": (1, 2)}).finished(outputs)


def test_start_clean_forgets_the_earlier_run_before_recording_the_new_one(tmp_path):
    earlier = RunFolder.open(tmp_path, {"method": "model"})
    earlier.start_clean([])
    stale = tmp_path / "overlay.mp4"
    stale.write_bytes(b"old")
    kept = tmp_path / "notes.txt"
    kept.write_text("the user's")
    later = RunFolder.open(tmp_path, {"method": "flow"})
    later.start_clean([stale, tmp_path / "never-written.png"])
    assert not stale.exists() and kept.exists()
    assert later.saved_config() == {"method": "flow"} and not earlier.finished([])


def test_claim_keeps_a_folder_of_the_same_configuration_and_refuses_another(tmp_path):
    RunFolder.open(tmp_path, {"method": "model", "refiner": None}).claim()
    part = tmp_path / "sequences" / "bear.json"
    part.parent.mkdir()
    part.write_text("{}")
    RunFolder.open(tmp_path, {"method": "model", "refiner": None}).claim()  # a resumed run
    assert part.exists()
    with pytest.raises(InputError, match="holds results of another configuration"):
        RunFolder.open(tmp_path, {"method": "flow", "refiner": None}).claim()
    assert RunFolder.open(tmp_path, {}).saved_config() == {"method": "model", "refiner": None}


def test_claim_fills_keys_that_older_configurations_lack_from_the_defaults(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"method": "model"}))
    run = RunFolder.open(tmp_path, {"method": "model", "refiner": None})
    with pytest.raises(InputError):
        run.claim()
    run.claim(defaults={"refiner": None})
    with pytest.raises(InputError):
        RunFolder.open(tmp_path, {"method": "model", "refiner": "shipped"}).claim(defaults={"refiner": None})


def test_an_output_folder_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="afile: output path exists and is not a folder"):
        output_folder(tmp_path / "afile")
    assert output_folder(tmp_path / "new" / "dir").is_dir()


def test_an_input_fingerprint_changes_with_the_file(tmp_path):
    path = tmp_path / "mask.png"
    path.write_bytes(b"1234")
    first = input_fingerprint(path)
    assert first["path"] == str(path.resolve()) and first["files"] == 1 and first["bytes"] == 4
    path.write_bytes(b"12345")
    assert input_fingerprint(path)["bytes"] == 5
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert input_fingerprint(path)["mtime_ns"] != first["mtime_ns"]
