"""hlsflow/state/ in one process, fast (no TensorFlow, no command, no model): the manifest's
reading, writing and signatures, when a stage's record is current, which files of an output folder
hlsflow can prove it wrote (`left`, `may_leave`), the checks on an output path, the lock, the
staging swap, and `hlsflow verify`'s verdicts. Real files in tmp_path and a real signing key file;
the slow flow tests (test_manifest.py, test_safety.py) show the same through the command.

Only the names other modules use (`outdir.X`, `signing.X`, `verify.verify`), so that these tests
hold when outdir.py is split into modules that it re-exports."""

import errno
import fcntl
import hashlib
import hmac
import json
import os
import stat
import sys
from importlib import metadata
from pathlib import Path

import pytest

from hlsflow import __version__
from hlsflow.config import FlowConfig
from hlsflow.errors import FlowError
from hlsflow.image import sbom
from hlsflow.state import outdir, signing, verify


@pytest.fixture(autouse=True)
def key(tmp_path, monkeypatch):
    """This test's own signing key file (HLSFLOW_SIGNING_KEY), made on first use as a user's is. A
    process reads its key once (signing._file_key is cached): forgotten here, as a new run would."""
    path = tmp_path / "config" / "signing.key"
    monkeypatch.setenv(signing.ENV, str(path))
    signing.use(None)
    signing._file_key.cache_clear()
    yield path
    signing.use(None)
    signing._file_key.cache_clear()


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "build" / "proj"
    folder.mkdir(parents=True)
    return folder


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def manifest_json(out: Path) -> dict:
    return json.loads((out / outdir.MANIFEST).read_text())


def record_stage(out, name="csim", inputs=None, files=None, in_place=True, leaves=()):
    """Run a stage whose work writes `files` ({relative path: text}) and records them as its outputs."""
    files = {"result.txt": "1"} if files is None else files
    stage = outdir.Record(out, name, inputs or {"project": "p1"}, in_place=in_place, leaves=leaves)

    def work(into):
        for rel, text in files.items():
            write(Path(into) / rel, text)
        return outdir.Outcome(list(files), result={"n": len(files)})

    return stage, stage.run(work)


# ------------------------------------------------------------------ signing

def test_the_key_file_is_made_once_with_32_random_bytes_readable_by_its_user_alone(key):
    assert not key.exists()
    assert signing.key_path() == key
    assert signing.ensure_key() == key
    data = key.read_bytes()
    assert len(data) == 32 and data != bytes(32)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert signing.ensure_key() == key and key.read_bytes() == data  # never replaced
    assert [p.name for p in key.parent.iterdir()] == ["signing.key"]  # no temporary copy left


def test_the_key_file_is_under_the_config_home_unless_named(monkeypatch, tmp_path):
    monkeypatch.delenv(signing.ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert signing.key_path() == tmp_path / "xdg" / "hlsflow" / "signing.key"
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert signing.key_path() == tmp_path / "home" / ".config" / "hlsflow" / "signing.key"
    monkeypatch.setenv(signing.ENV, "")  # empty: not a path
    assert signing.key_path() == tmp_path / "home" / ".config" / "hlsflow" / "signing.key"


def test_a_record_signed_with_this_key_holds_and_any_change_breaks_it(key):
    record = signing.sign({"status": "ok", "outputs": {"a": "1"}, "seconds": 1.5})
    assert set(record) == {"status", "outputs", "seconds", signing.FIELD}
    assert len(record[signing.FIELD]) == 64 and signing.holds(record)
    assert signing.holds(dict(reversed(list(record.items()))))  # key order does not matter
    assert signing.holds({**record, signing.FIELD: record[signing.FIELD].upper()})
    for changed in ({"status": "stale"}, {"outputs": {"a": "2"}}, {"seconds": 1.6}, {"extra": None}):
        assert not signing.holds({**record, **changed}), changed
    assert not signing.holds({k: v for k, v in record.items() if k != "seconds"})
    assert not signing.holds({**record, signing.FIELD: None})
    assert not signing.holds({**record, signing.FIELD: 0})
    assert not signing.holds({k: v for k, v in record.items() if k != signing.FIELD})
    assert not signing.holds({**record, signing.FIELD: record[signing.FIELD][:-1]})


def test_the_signature_is_an_hmac_of_the_records_canonical_json(key):
    # Pinned: a record signed by one version of hlsflow must hold for the next.
    record = signing.sign({"status": "ok", "b": [1, 2], "a": Path("/x")})
    body = b'{"a":"/x","b":[1,2],"status":"ok"}'
    assert record[signing.FIELD] == hmac.new(key.read_bytes(), body, hashlib.sha256).hexdigest()


def test_the_key_is_made_in_new_folders_and_in_an_existing_one(monkeypatch, tmp_path):
    deep = tmp_path / "a" / "b" / "signing.key"
    monkeypatch.setenv(signing.ENV, str(deep))
    assert signing.ensure_key() == deep and len(deep.read_bytes()) == 32
    (tmp_path / "c").mkdir()
    monkeypatch.setenv(signing.ENV, str(tmp_path / "c" / "k"))
    assert signing.ensure_key().read_bytes() != deep.read_bytes()


def test_another_users_key_does_not_hold_and_a_handed_key_is_used_instead_of_the_file(key):
    mine = signing.sign({"status": "ok"})
    theirs = os.urandom(32)
    signing.use(theirs)
    assert signing.current_key() == theirs
    assert not signing.holds(mine)
    signed = signing.sign({"status": "ok"})
    assert signed[signing.FIELD] != mine[signing.FIELD] and signing.holds(signed)
    signing.use(None)
    assert signing.current_key() == key.read_bytes()
    assert signing.holds(mine) and not signing.holds(signed)
    assert repr(signing.Secret(theirs)) == "<hlsflow signing key>"
    assert signing.Secret(theirs).value == theirs


def test_a_damaged_key_is_one_sentence_and_an_unwritable_place_signs_with_a_key_of_the_run(key, tmp_path, capsys,
                                                                                           monkeypatch):
    write(key, "short")
    with pytest.raises(FlowError, match=r"^The signing key .*signing.key is damaged \(shorter than 16 bytes\)"):
        signing.current_key()
    key.write_bytes(b"k" * 16)
    signing._file_key.cache_clear()
    assert signing.current_key() == b"k" * 16  # 16 bytes are enough
    blocker = write(tmp_path / "file")
    monkeypatch.setenv(signing.ENV, str(blocker / "signing.key"))  # its folder is a file: no key can be made
    signing._file_key.cache_clear()
    first = signing.current_key()
    assert len(first) == 32 and first == signing.current_key()  # one key for the whole run
    assert "WARNING: No signing key could be read or made at" in capsys.readouterr().err


# ------------------------------------------------------------------ the manifest file

def test_a_folder_without_a_manifest_has_an_empty_one_until_saved(out):
    manifest = outdir.Manifest(out)
    assert not manifest.exists and manifest.stages == {}
    assert manifest.data == {"format": outdir.FORMAT, "stages": {}, "runs": [], "environments": {}}
    assert not outdir.has_manifest(out)
    manifest.save()
    saved = manifest_json(out)
    assert saved["format"] == "hlsflow-manifest/1" and saved["tree_hash"] is None and saved["stand_in"] is False
    assert outdir.has_manifest(out) and outdir.Manifest(out).exists


def test_a_manifest_json_of_something_else_is_not_ours_and_not_damaged(out):
    write(out / "manifest.json", json.dumps({"name": "my web app", "icons": []}))
    assert not outdir.has_manifest(out)
    assert not outdir.Manifest(out).exists
    write(out / "manifest.json", json.dumps(["a", "list"]))
    assert not outdir.Manifest(out).exists
    assert outdir.manifest_problem(["a"]).startswith("it is not an hlsflow manifest")
    assert outdir.manifest_problem({"format": "other/1"}).startswith("it is not an hlsflow manifest")


@pytest.mark.parametrize("content, why", [
    ("{not json", "it is not readable JSON"),
    (json.dumps({"format": outdir.FORMAT, "stages": []}), "stages: [] is not of type 'object'"),
    (json.dumps({"format": outdir.FORMAT, "stages": {"csim": {"status": "done"}}}), "stages/csim/status: 'done' is not"),
    (json.dumps({"format": outdir.FORMAT, "runs": [{"stage": "csim"}]}), "runs/0: 'status' is a required property"),
    (json.dumps({"format": outdir.FORMAT, "tree_hash": 3}), "tree_hash: 3 is not of type"),
])
def test_a_damaged_manifest_is_one_sentence_naming_what_is_wrong(out, content, why):
    write(out / "manifest.json", content)
    with pytest.raises(FlowError) as caught:
        outdir.Manifest(out)
    message = str(caught.value)
    assert message.startswith(f"{out / 'manifest.json'} is damaged ({why}")
    assert message.endswith("move that folder aside (or delete it if nothing in it is needed) and run again.")
    assert outdir.has_manifest(out) == content.startswith("{\"")


def test_a_long_schema_message_is_cut_to_120_characters():
    why = outdir.manifest_problem({"format": outdir.FORMAT, "tree_hash": ["a" * 300]})
    assert why.startswith("tree_hash: [") and len(why) == len("tree_hash: ") + 120


def test_a_valid_manifest_has_no_problem():
    assert outdir.manifest_problem({"format": outdir.FORMAT}) is None
    assert outdir.manifest_problem({"format": outdir.FORMAT, "stages": {"a": {"status": "ok", "outputs": {}}},
                                    "runs": [{"stage": "a", "status": "ok"}], "future_key": 1}) is None


def test_save_sums_up_the_stages_and_keeps_the_last_runs(out):
    manifest = outdir.Manifest(out)
    manifest.stages.update(convert={"status": "ok", "tree_hash": "t1"}, csim={"status": "stale", "stand_in": True},
                           synth={"status": "ok", "vivado_version": "2020.1", "stand_in": True})
    manifest.data["versions"] = {"hls4ml": "1.3.0"}
    for i in range(outdir.RUNS_KEPT + 5):
        manifest.add_run("csim", f"t{i}", 1.23456, "ok", 0, reused=False)
    manifest.add_run("synth", "tz", 2, "running", None, reused=True, run_id="r1")
    manifest.save()
    saved = manifest_json(out)
    assert saved["tree_hash"] == "t1" and saved["stand_in"] is True and saved["hlsflow"] == __version__
    assert saved["versions"] == {"hls4ml": "1.3.0", "Vivado HLS": "2020.1"}
    assert len(saved["runs"]) == outdir.RUNS_KEPT == 200
    assert saved["runs"][0]["started"] == "t6"
    assert saved["runs"][-2] == {"stage": "csim", "command": outdir.command_line(), "started": "t204", "seconds": 1.235,
                                 "status": "ok", "exit_status": 0, "reused": False}
    assert saved["runs"][-1]["id"] == "r1" and saved["runs"][-1]["reused"] is True
    assert "id" not in saved["runs"][-2]
    manifest.stages["convert"]["status"] = "stale"
    manifest.stages["synth"]["stand_in"] = False
    manifest.save(to=write(out.parent / "elsewhere" / "x").parent)
    elsewhere = manifest_json(out.parent / "elsewhere")
    assert elsewhere["tree_hash"] is None and elsewhere["stand_in"] is False
    assert manifest_json(out)["tree_hash"] == "t1"  # written where it was told


def test_mark_stale_touches_only_current_records(out):
    manifest = outdir.Manifest(out)
    manifest.stages.update(a={"status": "ok"}, b={"status": "running"}, c={"status": "stale", "stale_because": "old"})
    manifest.mark_stale(["a", "b", "c", "absent"], "why")
    assert manifest.stages == {"a": {"status": "stale", "stale_because": "why"}, "b": {"status": "running"},
                               "c": {"status": "stale", "stale_because": "old"}}


def test_the_command_line_is_the_remembered_one_else_the_programs_arguments(monkeypatch):
    outdir.remember_command("hlsflow flow --out build/x")
    try:
        assert outdir.command_line() == "hlsflow flow --out build/x"
    finally:
        outdir.remember_command(None)
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/hlsflow", "flow", "--out", "my build"])
    assert outdir.command_line() == "hlsflow flow --out 'my build'"


# ------------------------------------------------------------------ hashes

def test_hashes_mark_executables_and_the_tree_hash_leaves_the_log_out(out):
    write(out / "b.sh", "run")
    write(out / "a" / "c.txt", "c")
    (out / "b.sh").chmod(0o755)
    files = outdir.hash_files(out, ["b.sh", "a/c.txt"])
    assert list(files) == ["a/c.txt", "b.sh"]
    assert files["a/c.txt"] == hashlib.sha256(b"c").hexdigest()
    assert files["b.sh"] == "x:" + hashlib.sha256(b"run").hexdigest()
    (out / "b.sh").chmod(0o644)
    assert outdir.hash_files(out, ["b.sh"])["b.sh"] == hashlib.sha256(b"run").hexdigest()
    tree = outdir.tree_hash(files)
    assert tree == outdir.digest(files) and len(tree) == 64
    assert outdir.tree_hash({**files, "hlsflow_convert.log": "any"}) == tree
    assert outdir.tree_hash({**files, "other.log": "any"}) != tree
    assert outdir.digest({"b": 1, "a": [1, 2]}) == outdir.digest({"a": [1, 2], "b": 1})
    assert outdir.digest({"b": Path("/x"), "a": 1}) == hashlib.sha256(b'{"a":1,"b":"/x"}').hexdigest()


def test_all_files_leaves_out_the_manifest_its_copies_the_mark_and_links(out, tmp_path):
    for rel in ("manifest.json", ".manifest.json.12.tmp", ".hlsflow-staging", "a/manifest.json", "b.txt",
                ".manifest.json.tmp.keep", "x/.hlsflow-staging"):
        write(out / rel)
    (out / "link").symlink_to(write(tmp_path / "target"))
    assert outdir.all_files(out) == [".manifest.json.tmp.keep", "a/manifest.json", "b.txt", "x/.hlsflow-staging"]


def test_changed_since_names_new_and_rewritten_files_only(out):
    write(out / "same.txt", "s")
    write(out / "edited.txt", "e")
    before = outdir.snapshot(out)
    assert set(before) == {"same.txt", "edited.txt"} and before["same.txt"][0] == 1
    write(out / "edited.txt", "longer")
    write(out / "new.txt", "n")
    assert sorted(outdir.changed_since(out, before)) == ["edited.txt", "new.txt"]


def test_changed_outputs_names_missing_and_changed_files(out):
    write(out / "kept.txt", "k")
    write(out / "edited.txt", "e")
    record = {"outputs": outdir.hash_files(out, ["kept.txt", "edited.txt"]) | {"gone.txt": "0" * 64}}
    write(out / "edited.txt", "E")
    assert sorted(outdir.changed_outputs(out, record)) == [("edited.txt", "changed"), ("gone.txt", "missing")]
    assert outdir.changed_outputs(out, {}) == []


# ------------------------------------------------------------------ a stage's record

def test_a_stage_runs_then_is_current_and_is_reused(out):
    stage, (record, reused) = record_stage(out)
    assert not reused and record["status"] == "ok" and record["result"] == {"n": 1}
    assert record["key"] == outdir.digest({"project": "p1"}) == stage.key
    assert record["outputs"] == outdir.hash_files(out, ["result.txt"]) and record["exit_status"] == 0
    saved = manifest_json(out)
    assert signing.holds(saved["stages"]["csim"])
    assert saved["stages"]["csim"]["environment"] in saved["environments"]
    assert [(r["stage"], r["status"], r["reused"]) for r in saved["runs"]] == [("csim", "ok", False)]
    assert outdir.stage_record(out, "csim") == saved["stages"]["csim"]
    again = outdir.Record(out, "csim", {"project": "p1"})
    assert again.state() == (outdir.CURRENT, "nothing it depends on changed")
    assert again.current_result() == {"n": 1}
    calls = []
    record2, reused2 = again.run(lambda into: calls.append(into), current="up to date")
    assert reused2 and calls == [] and record2 == saved["stages"]["csim"]
    assert [(r["status"], r["reused"], r["seconds"]) for r in manifest_json(out)["runs"]][-1] == ("ok", True, 0.0)
    forced = []
    outdir.Record(out, "csim", {"project": "p1"}).run(
        lambda into: forced.append(into) or outdir.Outcome(["result.txt"]), force=True)
    assert forced == [out]


def test_a_stage_is_missing_stale_changed_or_unfinished_and_says_why(out, capsys):
    assert outdir.Record(out, "csim", {}).state() == (outdir.MISSING, "it has not run")
    assert outdir.Record(out, "csim", {}).current_result() is None
    record_stage(out, inputs={"project": "p1", "samples": "s1"}, files={"a.txt": "a", "b.txt": "b", "c.txt": "c"})
    assert outdir.Record(out, "csim", {"project": "p2", "samples": "s1"}).state() == (outdir.STALE, "its project changed")
    assert outdir.Record(out, "csim", {"project": "p2", "samples": "s2"}).state() == \
        (outdir.STALE, "its project, samples changed")
    assert outdir.Record(out, "csim", {"project": "p1"}).state() == (outdir.STALE, "its samples changed")
    same = outdir.Record(out, "csim", {"project": "p1", "samples": "s1"})
    write(out / "b.txt", "B")
    assert same.state() == (outdir.CHANGED, "b.txt changed since it ran")
    (out / "a.txt").unlink()
    assert same.state() == (outdir.CHANGED, "a.txt and 1 more missing since it ran")
    assert same.current_result() is None
    lines = []
    same.run(lambda into: lines.append(1) or outdir.Outcome([]), again="csim again")
    assert lines == [1] and "==> csim again: a.txt and 1 more missing since it ran" in capsys.readouterr().out
    for status, why in (("running", "its last run did not finish"), ("failed", "its last run failed"),
                        ("interrupted", "its last run interrupted")):
        manifest = outdir.Manifest(out)
        manifest.stages["csim"]["status"] = status
        manifest.save()
        assert same.state() == (outdir.UNFINISHED, why)
    outdir.Manifest(out).mark_stale(["csim"], "x")  # not saved: nothing changes
    manifest = outdir.Manifest(out)
    manifest.stages["csim"]["status"] = "ok"
    manifest.mark_stale(["csim"], "convert ran again")
    manifest.save()
    assert same.state() == (outdir.STALE, "convert ran again")
    manifest.stages["csim"] = {"status": "stale"}
    manifest.save()
    assert same.state() == (outdir.STALE, "what it was made from changed")


def test_a_record_not_signed_with_this_key_is_stale_however_intact(out):
    record_stage(out)
    stage = outdir.Record(out, "csim", {"project": "p1"})
    assert stage.state()[0] == outdir.CURRENT
    signing.use(os.urandom(32))  # another user reads the folder
    assert stage.state() == (outdir.STALE, "it was not recorded by you (its signature does not hold for your key)")
    assert stage.current_result() is None
    signing.use(None)
    manifest = outdir.Manifest(out)
    manifest.stages["csim"]["result"] = {"n": 2}  # rewritten by hand, hash and all
    manifest.save()
    assert stage.state()[0] == outdir.STALE
    del manifest.stages["csim"]["signature"]
    manifest.save()
    assert stage.state()[0] == outdir.STALE


def test_a_new_run_marks_what_was_made_from_it_stale(out):
    record_stage(out, "convert", in_place=False, files={"p.cpp": "1"})
    record_stage(out, "synth", files={"s.rpt": "1"})
    record_stage(out, "report", files={"r.json": "1"})
    record_stage(out, "csim", files={"c.json": "1"})
    assert manifest_json(out)["tree_hash"] == outdir.stage_record(out, "convert")["tree_hash"]
    record_stage(out, "synth", inputs={"project": "p2"}, files={"s.rpt": "1"})  # the same files: nothing downstream
    assert outdir.stage_record(out, "report")["status"] == "ok"
    record_stage(out, "synth", inputs={"project": "p3"}, files={"s.rpt": "2"})
    assert outdir.stage_record(out, "report") == {**outdir.stage_record(out, "report"), "status": "stale",
                                                  "stale_because": "synth ran again"}
    assert outdir.stage_record(out, "csim")["status"] == "ok"
    record_stage(out, "convert", inputs={"model": "m2"}, in_place=False, files={"p.cpp": "1"})  # everything goes
    states = {n: (r["status"], r.get("stale_because")) for n, r in manifest_json(out)["stages"].items()}
    assert states == {"convert": ("ok", None), "synth": ("stale", "the project was written again"),
                      "report": ("stale", "synth ran again"), "csim": ("stale", "the project was written again")}


def test_convert_writes_a_staging_folder_that_replaces_the_output_whole(out):
    write(out / "old.cpp", "old")
    outdir.Manifest(out).save()
    stage = outdir.Record(out, "convert", {"model": "m"}, in_place=False)
    seen = {}

    def work(into):
        seen["into"] = Path(into)
        assert Path(into) != out and Path(into).parent == out.parent
        assert (Path(into) / outdir.STAGING_MARK).is_file()
        write(Path(into) / "new.cpp", "new")
        write(Path(into) / "hlsflow_convert.log", "log")
        return outdir.Outcome(["new.cpp", "hlsflow_convert.log"], sources={"model": {"path": "m.keras"}})

    record, reused = stage.run(work)
    assert not reused and sorted(os.listdir(out)) == ["hlsflow_convert.log", "manifest.json", "new.cpp"]
    assert not seen["into"].exists() and sorted(os.listdir(out.parent)) == ["proj"]
    assert record["tree_hash"] == outdir.tree_hash({"new.cpp": outdir.hash_files(out, ["new.cpp"])["new.cpp"]})
    saved = manifest_json(out)
    assert saved["inputs"] == {"model": {"path": "m.keras"}} and saved["tree_hash"] == record["tree_hash"]
    assert [r["status"] for r in saved["runs"]] == ["ok"] and "id" not in saved["runs"][0]  # its "running" run, ended
    assert outdir.Record(out, "convert", {"model": "m"}, in_place=False).state()[0] == outdir.CURRENT


def test_a_failed_convert_leaves_the_previous_project_and_no_staging_folder(out):
    record_stage(out, "convert", in_place=False, files={"p.cpp": "1"})
    before = manifest_json(out)["stages"]

    def fails(into):
        write(Path(into) / "half.cpp")
        raise FlowError("broken model", exit_code=2)

    with pytest.raises(FlowError, match="broken model"):
        outdir.Record(out, "convert", {"model": "other"}, in_place=False).run(fails)
    assert sorted(os.listdir(out.parent)) == ["proj"]
    assert sorted(os.listdir(out)) == ["manifest.json", "p.cpp"]
    saved = manifest_json(out)
    assert saved["stages"] == before  # convert's record is left as it was: the project is whole
    assert saved["runs"][-1]["status"] == "failed" and saved["runs"][-1]["exit_status"] == 2


def test_staging_replaces_a_folder_and_removes_its_copy_on_failure(tmp_path):
    target = tmp_path / "w" / "proj"  # beside it only what staging makes (the key is in tmp_path/config)
    target.parent.mkdir()
    tmp_path = target.parent
    with outdir.staging(target) as into:
        write(into / "f", "first")
        assert (into / outdir.STAGING_MARK).is_file()
    assert os.listdir(target) == ["f"] and sorted(os.listdir(tmp_path)) == ["proj"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask
    with outdir.staging(target) as into:
        write(into / "g", "second")
    assert os.listdir(target) == ["g"] and sorted(os.listdir(tmp_path)) == ["proj"]
    with pytest.raises(RuntimeError):
        with outdir.staging(target) as into:
            write(into / "h")
            raise RuntimeError("stop")
    assert os.listdir(target) == ["g"] and sorted(os.listdir(tmp_path)) == ["proj"]


def ended_by(out, exc: BaseException) -> tuple:
    """(status, exit_status) the csim record holds after a run whose work raised exc (which goes on up)."""
    def work(into):
        raise exc

    with pytest.raises(type(exc)):
        outdir.Record(out, "csim", {"project": "p1"}).run(work, force=True)
    record = outdir.stage_record(out, "csim")
    return record["status"], record["exit_status"]


class Hangup(KeyboardInterrupt):
    """SIGHUP as cli.Interrupted carries it."""
    signum = 1


def test_a_failed_or_interrupted_in_place_run_is_recorded_with_its_exit_status(out):
    record_stage(out)
    assert ended_by(out, FlowError("no", exit_code=3)) == ("failed", 3)
    last_run = manifest_json(out)["runs"][-1]
    assert last_run["status"] == "failed" and last_run["exit_status"] == 3 and "id" not in last_run
    assert ended_by(out, FlowError("stopped", exit_code=130)) == ("interrupted", 130)
    assert ended_by(out, KeyboardInterrupt()) == ("interrupted", 130)
    assert ended_by(out, Hangup()) == ("interrupted", 129)
    assert ended_by(out, ValueError("bug")) == ("failed", 1)
    assert outdir.Record(out, "csim", {"project": "p1"}).state() == (outdir.UNFINISHED, "its last run failed")
    assert [r["status"] for r in manifest_json(out)["runs"]] == ["ok", "failed", "interrupted", "interrupted",
                                                                  "interrupted", "failed"]


def test_a_full_disk_while_a_stage_writes_is_one_sentence_naming_the_folder(out):
    def full(into):
        raise OSError(errno.ENOSPC, "No space left on device", str(into / "big.bin"))

    with pytest.raises(FlowError, match=rf"^No space left on the disk of {out} ") as caught:
        outdir.Record(out, "csim", {"project": "p1"}).run(full)
    assert caught.value.exit_code == 2
    assert (outdir.stage_record(out, "csim")["status"], outdir.stage_record(out, "csim")["exit_status"]) == ("failed", 2)

    def other(into):
        raise OSError(errno.ENOENT, "No such file", "x")

    with pytest.raises(FileNotFoundError):  # not a write error: goes on up as it is
        outdir.Record(out, "csim", {"project": "p1"}).run(other)


def test_a_run_killed_midway_stays_recorded_as_running(out):
    stage = outdir.Record(out, "synth", {"project": "p1"}, leaves=["synth_prj/", "vivado.log"])
    with stage.running():
        saved = manifest_json(out)
        record = saved["stages"]["synth"]
        assert record["status"] == "running" and record["may_leave"] == ["synth_prj/", "vivado.log"]
        assert record["left"] == [] and saved["runs"][-1]["status"] == "running" and "id" in saved["runs"][-1]
        pass  # the process is killed here: only done() records an end that is not a failure
    assert outdir.stage_record(out, "synth")["status"] == "running"
    assert outdir.Record(out, "synth", {"project": "p1"}).state() == (outdir.UNFINISHED, "its last run did not finish")


# ------------------------------------------------------------------ whose files they are

def test_an_empty_or_absent_folder_holds_no_foreign_file(tmp_path):
    assert outdir.foreign_files(tmp_path / "absent") == []
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert outdir.foreign_files(tmp_path / "empty") == []
    outdir.check_owned(tmp_path / "empty")


def test_without_a_manifest_every_file_is_foreign_and_a_foreign_manifest_first(out, tmp_path):
    write(out / "b.txt")
    write(out / "a" / "z.txt")
    (out / "link").symlink_to(tmp_path / "nowhere")
    (out / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    assert outdir.foreign_files(out) == ["b.txt", "link", "dirlink", "a/z.txt"]  # links to folders too, not followed
    write(out / "manifest.json", "{\"name\": \"web app\"}")
    assert outdir.foreign_files(out)[0] == "manifest.json"
    with pytest.raises(FlowError) as caught:
        outdir.check_owned(out)
    assert str(caught.value) == (f"{out} holds manifest.json (and 4 more), which hlsflow did not write, and hlsflow "
                                 "writes only into an empty folder or one of its own outputs: choose another --out, "
                                 "or move that file out of the folder.")


def test_two_foreign_files_are_counted_as_one_and_one_more(out):
    write(out / "a.txt")
    write(out / "b.txt")
    with pytest.raises(FlowError, match=r"holds a\.txt \(and 1 more\), which"):
        outdir.check_owned(out)
    (out / "b.txt").unlink()
    with pytest.raises(FlowError, match=r"holds a\.txt, which"):
        outdir.check_owned(out)


def test_a_stages_outputs_and_the_manifest_are_hlsflows_and_nothing_else_by_name(out):
    record_stage(out, files={"result.txt": "1", "sub/r.o": "o"})
    assert outdir.foreign_files(out) == []
    outdir.check_owned(out)
    for rel in ("notes_prj/thesis.tex", "results.o", "sub/r.o.bak", ".result.txt.tmp", "result.txt/"[:-1] + "2"):
        write(out / rel)
    assert sorted(outdir.foreign_files(out)) == [".result.txt.tmp", "notes_prj/thesis.tex", "result.txt2",
                                                 "results.o", "sub/r.o.bak"]
    with pytest.raises(FlowError, match=r"holds \.result\.txt\.tmp \(and 4 more\), which hlsflow did not write"):
        outdir.check_owned(out)


def test_atomic_copies_of_hlsflows_files_are_its_own(out):
    record_stage(out, files={"result.txt": "1", "sub/r.o": "o"})
    write(out / ".result.txt.42.tmp")
    write(out / "sub" / ".r.o.7.tmp")
    write(out / ".manifest.json.3.tmp")
    assert outdir.foreign_files(out) == []
    write(out / ".result.txt.x.tmp")  # not a pid
    write(out / "sub" / ".result.txt.1.tmp")  # another folder's file
    write(out / ".other.1.tmp")
    assert outdir.foreign_files(out) == [".other.1.tmp", ".result.txt.x.tmp", "sub/.result.txt.1.tmp"]
    write(out / "x" / ".manifest.json.3.tmp")
    assert "x/.manifest.json.3.tmp" in outdir.foreign_files(out)


def test_an_unfinished_run_owns_exactly_what_it_said_it_may_leave(out):
    stage = outdir.Record(out, "synth", {"project": "p1"}, leaves=["synth_prj/", "vivado.log"])
    with stage.running():
        write(out / "synth_prj" / "solution1" / "a.rpt")
        write(out / "vivado.log")
        write(out / "synth_prj.txt")
        write(out / "vivado.log.old")
    assert outdir.foreign_files(out) == ["synth_prj.txt", "vivado.log.old"]
    files, folders = outdir.accounted_files(manifest_json(out)["stages"].values())
    assert files == {"manifest.json", "vivado.log"} and folders == {"synth_prj/"}
    assert outdir.is_accounted("synth_prj/x/y", files, folders)
    assert not outdir.is_accounted("synth_prj", files, folders)
    assert outdir.is_accounted(".vivado.log.9.tmp", files, folders)
    manifest = outdir.Manifest(out)
    manifest.stages["synth"]["status"] = "ok"  # a finished run owns its outputs and `left` alone
    signing.sign(manifest.stages["synth"])
    manifest.save()
    assert "vivado.log" in outdir.foreign_files(out) and "synth_prj/solution1/a.rpt" in outdir.foreign_files(out)
    for status in ("failed", "interrupted"):
        manifest.stages["synth"]["status"] = status
        signing.sign(manifest.stages["synth"])
        manifest.save()
        assert outdir.foreign_files(out) == ["synth_prj.txt", "vivado.log.old"]


def test_a_failed_in_place_run_records_exactly_the_files_it_left(out):
    record_stage(out, files={"keep.txt": "k"})
    write(out / "users.txt", "mine")
    with pytest.raises(FlowError):
        stage = outdir.Record(out, "csim", {"project": "p2"})
        with stage.running():
            write(out / "half.bin")
            write(out / ".half.bin.5.tmp")
            write(out / "keep.txt", "rewritten")
            raise FlowError("stopped")
    record = outdir.stage_record(out, "csim")
    # keep.txt stays its recorded output (the record is unfinished, so it is redone anyway).
    assert record["left"] == ["half.bin"] and record["status"] == "failed" and "keep.txt" in record["outputs"]
    assert outdir.foreign_files(out) == ["users.txt"]  # a copy of half.bin being written is the run's too
    # A later run that succeeds and does not write them again still owns them.
    (out / ".half.bin.5.tmp").unlink()
    (out / "users.txt").unlink()
    _, (done, _) = record_stage(out, inputs={"project": "p3"}, files={"new.txt": "n"})
    assert done["left"] == ["half.bin", "keep.txt"] and outdir.foreign_files(out) == []
    (out / "half.bin").unlink()
    _, (done, _) = record_stage(out, inputs={"project": "p4"}, files={"new.txt": "n", "keep.txt": "k"})
    assert "left" not in done and outdir.foreign_files(out) == []


# ------------------------------------------------------------------ where hlsflow may write

def test_an_output_path_is_refused_in_one_sentence_for_each_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    cwd = tmp_path / "work"
    cwd.mkdir()
    cases = [
        (cwd, "is the folder you are in, which hlsflow never uses as an output"),
        (tmp_path / "home", "is your home folder"),
        (Path("/"), "is the root folder"),
        (cwd / ".", "is the folder you are in"),
        (cwd / 'a"b', "has the character '\"', which hls4ml's build scripts cannot carry"),
        (cwd / "a\\b", "has the character '\\\\'"),
        (cwd / "a\tb", "has the character '\\t'"),
        (cwd / "a\u200bb", "has the character '\\u200b'"),
    ]
    write(cwd / "file.txt")
    (cwd / "link").symlink_to(tmp_path / "home")
    cases += [(cwd / "file.txt", "is a file, not a folder: give --out (or OutputDir in the config) a folder path."),
              (cwd / "link", f"is a symbolic link (to {tmp_path / 'home'}): hlsflow writes only into real folders")]
    for path, says in cases:
        with pytest.raises(FlowError) as caught:
            outdir.check_output_path(path, cwd=cwd)
        assert says in str(caught.value), (path, str(caught.value))
        assert str(caught.value).startswith("The output directory "), path
        assert caught.value.exit_code == 2
    with pytest.raises(FlowError, match=r"^The grid folder .* is the folder you are in"):
        outdir.check_output_path(cwd, cwd=cwd, what="grid folder")
    with pytest.raises(FlowError) as caught:
        outdir.check_output_path(cwd, cwd=cwd)
    assert str(caught.value) == (f"The output directory {cwd} is the folder you are in, which hlsflow never uses as an "
                                 "output: give --out (or OutputDir in the config) a folder of its own, e.g. "
                                 "build/myproject.")
    quoted = cwd / 'a"b'
    with pytest.raises(FlowError) as caught:
        outdir.check_output_path(quoted, cwd=cwd)
    assert str(caught.value).startswith(f"The output directory {str(quoted)!r} has the character")
    assert outdir.check_output_path(cwd / "XX_Build-1.x", cwd=cwd) == cwd / "XX_Build-1.x"


def test_an_output_path_holding_an_input_is_refused_and_others_are_taken_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = write(tmp_path / "build" / "model.keras")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "in").symlink_to(tmp_path / "build")
    for given in (model, "build/model.keras", tmp_path / "elsewhere" / "in" / "model.keras"):
        with pytest.raises(FlowError, match=r"^The output directory .*build holds .*model.keras, an input of this run"):
            outdir.check_output_path("build", inputs=[None, given])
    assert outdir.check_output_path("build/proj", inputs=[model, None, ""]) == tmp_path / "build" / "proj"
    assert outdir.check_output_path("buil", inputs=[model]) == tmp_path / "buil"  # a name's prefix is not a folder
    assert outdir.check_output_path("a/../b") == tmp_path / "b"
    assert outdir.check_output_path(tmp_path / "new", cwd=tmp_path / "other") == tmp_path / "new"


def test_the_lock_is_one_run_at_a_time_and_is_removed_at_the_end(out):
    lock = out.with_name(".proj.lock")
    with outdir.locked(out):
        assert lock.is_file()
        with outdir.locked(out):  # the same run again: held already
            assert lock.is_file()
        assert lock.is_file()
        with open(lock, "a") as other:  # another run's attempt: its own open file
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not lock.exists()
    write(lock, signing.vouch(f"lock:{lock.name}"))  # another run's, which holds it
    with open(lock, "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FlowError) as caught:
            with outdir.locked(out):
                pass
        assert str(caught.value) == f"Another hlsflow run is working on {out}: wait for it to finish, or stop it."
    with outdir.locked(out):
        pass
    assert not lock.exists()


def test_a_lock_beside_a_folder_that_cannot_be_made_is_one_sentence(tmp_path):
    write(tmp_path / "file")
    with pytest.raises(FlowError, match=rf"^Cannot write the output directory {tmp_path / 'file' / 'proj'} \("):
        with outdir.locked(tmp_path / "file" / "proj"):
            pass


def test_claiming_removes_dead_staging_folders_hlsflow_marked_and_nothing_else(out, tmp_path):
    record_stage(out)
    dead = write(out.parent / ".proj.partial-abc" / outdir.STAGING_MARK, signing.vouch("staging:.proj.partial-abc")).parent
    old = write(out.parent / ".proj.old-12" / outdir.STAGING_MARK, signing.vouch("staging:.proj.old-12")).parent
    write(dead / "half.cpp")
    unmarked = write(out.parent / ".proj.partial-users" / "thesis.tex").parent
    other = write(out.parent / ".other.partial-x" / outdir.STAGING_MARK).parent
    marked_file = write(out.parent / ".proj.old-3")
    (out.parent / ".proj.partial-link").symlink_to(dead.with_name("target"))
    write(dead.with_name("target") / outdir.STAGING_MARK)
    with outdir.claimed(out):
        assert not dead.exists() and not old.exists()
        assert unmarked.is_dir() and other.is_dir() and marked_file.is_file()
        assert (out.parent / ".proj.partial-link").is_symlink() and (out.parent / "target").is_dir()
    outdir.remove_dead_staging(tmp_path / "absent" / "proj")  # no parent: nothing to do


def test_claiming_a_folder_with_a_users_file_or_an_input_is_refused(out, tmp_path):
    write(out / "thesis.tex")
    with pytest.raises(FlowError, match="holds thesis.tex, which hlsflow did not write"):
        with outdir.claimed(out):
            pass
    assert not out.with_name(".proj.lock").exists()
    with pytest.raises(FlowError, match="an input of this run"):
        with outdir.claimed(out, inputs=[out / "thesis.tex"]):
            pass


def test_check_writable_probes_beside_the_folder_and_leaves_nothing(out, tmp_path):
    outdir.check_writable(out)
    assert sorted(os.listdir(out.parent)) == ["proj"]
    outdir.check_writable(tmp_path / "new" / "deeper" / "proj")
    assert sorted(os.listdir(tmp_path / "new" / "deeper")) == []
    write(tmp_path / "file")
    with pytest.raises(FlowError, match=r"^Cannot write the output directory .*file/x \("):
        outdir.check_writable(tmp_path / "file" / "x")
    write(out / "thesis.tex")
    with pytest.raises(FlowError, match="holds thesis.tex"):
        outdir.check_writable(out)


def test_made_from_needs_an_intact_ok_record_of_that_project(out):
    record_stage(out, "synth", inputs={"project": "t1"}, files={"s.rpt": "1"})
    assert outdir.made_from(out, "synth", {"tree_hash": "t1"})
    assert not outdir.made_from(out, "synth", {"tree_hash": "t2"})
    assert not outdir.made_from(out, "report", {"tree_hash": "t1"})
    write(out / "s.rpt", "2")
    assert not outdir.made_from(out, "synth", {"tree_hash": "t1"})
    manifest = outdir.Manifest(out)
    manifest.stages["csim"] = {"status": "ok", "outputs": {}}  # no inputs recorded
    manifest.save()
    assert not outdir.made_from(out, "csim", {"tree_hash": "t1"})
    assert outdir.csynth_xml_path(out, "p") == out / "p_prj" / "solution1" / "syn" / "report" / "p_csynth.xml"
    assert outdir.emulation_library(out, "p", "ab12cd34") == out / "firmware" / "p-ab12cd34.so"


# ------------------------------------------------------------------ hlsflow verify

def test_verify_passes_on_an_intact_folder_signed_by_this_user(out, capsys):
    record_stage(out, "convert", in_place=False, files={"p.cpp": "1", "hlsflow_convert.log": "l"})
    record_stage(out, "csim", files={"c.json": "1"})
    manifest = outdir.Manifest(out)
    manifest.stages["synth"] = {"status": "stale", "stale_because": "old", "outputs": {"gone.rpt": "0"}}
    manifest.stages["report"] = {"status": "running", "outputs": {}}
    manifest.save()
    result = verify.verify(out)
    assert result == {"files": 3, "stages": ["convert", "csim"], "tree_hash": manifest_json(out)["tree_hash"],
                      "signed_by_you": True, "not_signed": []}
    said = capsys.readouterr().out
    assert f"{out} matches its manifest: 3 files of 2 stage(s) (convert, csim) intact" in said
    assert "note: synth is stale (old): its files were not checked" in said
    assert "note: report is not complete (its last run did not finish)" in said
    assert "written by you: every record is signed with your key" in said


def test_verify_names_each_difference_and_fails_with_exit_code_one(out, capsys):
    record_stage(out, "convert", in_place=False, files={"p.cpp": "1", "q.cpp": "2"})
    write(out / "p.cpp", "edited")
    (out / "q.cpp").unlink()
    write(out / "added.txt")
    manifest = outdir.Manifest(out)
    manifest.stages["convert"]["tree_hash"] = "0" * 64
    manifest.save()
    with pytest.raises(FlowError) as caught:
        verify.verify(out)
    assert caught.value.exit_code == 1
    assert str(caught.value) == (f"{out} does not match its manifest: 4 difference(s), listed above; run the flow again "
                                 "to remake the outputs, or find out what changed them.")
    listed = capsys.readouterr().err.splitlines()
    assert sorted(listed) == sorted(f"  {line}" for line in (
        "changed: p.cpp (made by convert)", "missing: q.cpp (made by convert)",
        "added: added.txt (made by no recorded stage)",
        "the manifest's project tree hash is not the hash of the files it lists"))


def test_verify_checks_the_users_input_files_it_can_reach(out, tmp_path, capsys):
    model = write(tmp_path / "m" / "model.keras", "m")
    config = write(tmp_path / "config.yml", "c")
    record_stage(out, files={"c.json": "1"})
    manifest = outdir.Manifest(out)
    manifest.data["inputs"] = {
        "model": {"path": str(model), "sha256": {"model.keras": outdir.hash_files(model.parent, ["model.keras"])[
            "model.keras"], "weights.h5": "0" * 64}},
        "config": {"path": str(config), "sha256": outdir.hash_files(tmp_path, ["config.yml"])["config.yml"]},
        "samples": {"path": str(write(tmp_path / "samples.npz", "s")), "sha256": None}}  # not hashed: not checked
    manifest.save()
    verify.verify(out)
    assert f"note: the model file {model.with_name('weights.h5')} is not here, so it was not checked" in \
        capsys.readouterr().out
    write(config, "changed")
    with pytest.raises(FlowError, match="1 difference"):
        verify.verify(out)
    assert f"input changed: the config file {config} is not the one the outputs were made from" in \
        capsys.readouterr().err
    write(config, "c")
    manifest.data["inputs"]["samples"]["sha256"] = "0" * 64
    manifest.save()
    with pytest.raises(FlowError, match="1 difference"):
        verify.verify(out)
    assert f"input changed: the samples file {tmp_path / 'samples.npz'} is not the one" in capsys.readouterr().err


def test_verify_says_which_records_another_key_signed(out, capsys):
    record_stage(out, "convert", in_place=False, files={"p.cpp": "1"})
    signing.use(os.urandom(32))
    record_stage(out, "csim", files={"c.json": "1"})
    signing.use(None)
    result = verify.verify(out)
    assert result["signed_by_you"] is False and result["not_signed"] == ["csim"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  NOT signed with your key: csim. The files match the manifest, but that does not say who wrote them (anyone "
        "can rewrite a file and its hash): another user or machine recorded them, or an older hlsflow that did not "
        "sign its records, or someone changed them. hlsflow makes those again before it uses them.")
    signing.use(os.urandom(32))
    assert verify.verify(out)["not_signed"] == ["convert", "csim"]
    assert "NOT signed with your key: convert, csim. The files" in capsys.readouterr().out


def test_verify_of_what_is_no_output_folder_is_one_sentence(tmp_path):
    with pytest.raises(FlowError, match=r"is not a directory: give the output directory of a flow run\.$"):
        verify.verify(tmp_path / "absent")
    with pytest.raises(FlowError, match=r"has no manifest.json, so it is not an output folder of hlsflow \(hlsflow "):
        verify.verify(tmp_path)
    write(tmp_path / "manifest.json", "{}")
    with pytest.raises(FlowError) as caught:
        verify.verify(tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'manifest.json'} is not an hlsflow manifest, so {tmp_path} is not an "
                                 "output folder of hlsflow: give the folder a flow run wrote (its --out).")


def test_verify_of_a_folder_whose_only_run_did_not_finish(out, capsys):
    with outdir.Record(out, "csim", {"project": "p1"}).running():
        pass  # killed: no stage finished, so the manifest names no inputs yet
    assert "inputs" not in manifest_json(out)
    assert verify.verify(out)["stages"] == []
    assert "note: csim is not complete (its last run did not finish)" in capsys.readouterr().out


# ------------------------------------------------------------------ more of a stage's record

def test_the_record_and_its_runs_say_when_in_utc_and_how_they_ended(out, capsys, monkeypatch, tmp_path, request):
    bom = write(tmp_path / "sbom.json", json.dumps({"bomFormat": "CycloneDX", "components": [
        {"purl": "pkg:pypi/numpy@1.25.0"}]}))
    monkeypatch.setenv(sbom.SBOM_ENV, str(bom))
    sbom.image_packages.cache_clear()  # read once per process: this test's SBOM, then the image's again
    request.addfinalizer(sbom.image_packages.cache_clear)
    stage = outdir.Record(out, "csim", {"project": "p1"})

    def work(into):
        record = manifest_json(out)["stages"]["csim"]
        assert record["status"] == "running" and record["started"].endswith("+00:00")
        write(out / "r.txt")
        return outdir.Outcome(["r.txt"], result={"n": 1}, extra={"stamp": "ab12cd34"})

    record, _ = stage.run(work)
    assert record["stamp"] == "ab12cd34" and record["result"] == {"n": 1}
    assert record["started"].endswith("+00:00") and record["finished"].endswith("+00:00")
    assert isinstance(record["seconds"], float) and record["exit_status"] == 0
    saved = manifest_json(out)
    assert saved["runs"][-1]["exit_status"] == 0 and saved["runs"][-1]["started"] == record["started"]
    env_id = record["environment"]
    assert len(env_id) == 16 and env_id == outdir.digest(saved["environments"][env_id])[:16]
    assert saved["versions"] == saved["environments"][env_id]["versions"]
    assert saved["versions"]["hls4ml"] == metadata.version("hls4ml")
    assert saved["image"]["sbom_sha256"] == hashlib.sha256(bom.read_bytes()).hexdigest()
    assert saved["image"]["packages"] == {"pypi/numpy": "1.25.0"}
    assert stage.run(lambda into: None, current="csim is up to date")[1] is True
    assert capsys.readouterr().out == "==> csim is up to date\n"
    reused = manifest_json(out)["runs"][-1]
    assert reused["reused"] is True and reused["exit_status"] == 0 and reused["started"].endswith("+00:00")
    write(out / "r.txt", "changed")
    outdir.Record(out, "csim", {"project": "p1"}).run(lambda into: outdir.Outcome(["r.txt"]))  # no `again`: silent
    assert capsys.readouterr().out == ""
    monkeypatch.delenv(sbom.SBOM_ENV)  # run outside the image: no SBOM
    sbom.image_packages.cache_clear()
    outdir.Record(out, "csim", {"project": "p1"}).run(lambda into: outdir.Outcome(["r.txt"]), force=True)
    image = manifest_json(out)["image"]
    assert image["sbom_sha256"] is None and image["packages"] is None


def test_a_stage_into_a_folder_that_does_not_exist_yet_records_its_one_run(tmp_path):
    out = tmp_path / "fresh"
    record_stage(out, "convert", in_place=False, files={"p.cpp": "1"})
    runs = manifest_json(out)["runs"]
    assert [(r["stage"], r["status"], r["exit_status"], r["reused"]) for r in runs] == [("convert", "ok", 0, False)]
    assert runs[0]["started"].endswith("+00:00") and isinstance(runs[0]["seconds"], float)


def test_an_in_place_stage_that_fails_before_its_folder_exists_records_the_failure_once_it_does(tmp_path):
    out = tmp_path / "fresh"

    def work(into):
        write(out / "half.txt")
        raise FlowError("stopped", exit_code=3)

    with pytest.raises(FlowError, match="stopped"):
        outdir.Record(out, "csim", {"project": "p1"}).run(work)
    saved = manifest_json(out)
    assert saved["stages"]["csim"] == {"status": "failed", "exit_status": 3, "left": []}
    assert [(r["stage"], r["status"], r["exit_status"]) for r in saved["runs"]] == [("csim", "failed", 3)]

    def nothing_made(into):
        raise FlowError("stopped early")

    with pytest.raises(FlowError, match="stopped early"):  # no folder: nothing recorded, nothing made
        outdir.Record(tmp_path / "never", "csim", {"project": "p1"}).run(nothing_made)
    assert not (tmp_path / "never").exists()


def test_a_signed_record_without_its_inputs_or_with_another_key_is_stale(out):
    record_stage(out)
    manifest = outdir.Manifest(out)
    record = manifest.stages["csim"]
    manifest.stages["csim"] = signing.sign({k: v for k, v in record.items() if k not in ("inputs", signing.FIELD)})
    manifest.save()
    assert outdir.Record(out, "csim", {"project": "p2"}).state() == (outdir.STALE, "its project changed")
    manifest.stages["csim"] = signing.sign({**record, "key": "another"})
    manifest.save()
    assert outdir.Record(out, "csim", {"project": "p1"}).state() == (outdir.STALE, "its inputs changed")


# ------------------------------------------------------------------ what a stage is made from

def flow_config(tmp_path, model_text="weights", folder="m", **changes) -> FlowConfig:
    model = write(tmp_path / folder / "model.keras", model_text)
    fields = dict(source=write(tmp_path / "hls4ml_config.yml", "Part: x"), keras_model=model,
                  output_dir=tmp_path / "build" / "proj", project_name="myproject", part="xc7z020clg400-1",
                  backend="Vivado", io_type="io_parallel", clock_period=5.0,
                  hls_config={"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1}})
    return FlowConfig(**{**fields, **changes})


def test_the_design_is_the_models_bytes_and_the_settings_not_where_they_are(tmp_path):
    cfg = flow_config(tmp_path)
    model_sha = hashlib.sha256(b"weights").hexdigest()
    assert outdir.model_hashes(cfg) == {"model.keras": model_sha}
    settings = {"hls_config": cfg.hls_config, "project_name": "myproject", "part": "xc7z020clg400-1",
                "backend": "Vivado", "io_type": "io_parallel", "clock_period": 5.0}
    assert outdir.design_inputs(cfg) == {"model": [model_sha], "hls4ml_settings": settings,
                                         "hls4ml": metadata.version("hls4ml"), "hlsflow": __version__}
    stamp = outdir.lib_stamp(cfg)
    assert stamp == outdir.digest(outdir.design_inputs(cfg))[:8] and len(stamp) == 8
    moved = flow_config(tmp_path, folder="elsewhere", output_dir=tmp_path / "other")
    assert outdir.lib_stamp(moved) == stamp
    assert outdir.lib_stamp(flow_config(tmp_path, part="xcu250-figd2104-2L-e")) != stamp
    assert outdir.lib_stamp(flow_config(tmp_path, model_text="other weights")) != stamp


def test_the_effective_config_and_the_sources_as_the_manifest_records_them(tmp_path):
    cfg = flow_config(tmp_path)
    effective = {"ProjectName": "myproject", "Part": "xc7z020clg400-1", "Backend": "Vivado", "IOType": "io_parallel",
                 "ClockPeriod": 5.0, "HLSConfig": cfg.hls_config, "Flow": cfg.flow}
    assert outdir.effective_config(cfg) == effective
    assert outdir.design_sources(cfg) == {
        "model": {"path": str(cfg.keras_model), "sha256": {"model.keras": hashlib.sha256(b"weights").hexdigest()}},
        "config": {"path": str(cfg.source), "sha256": hashlib.sha256(b"Part: x").hexdigest(), "effective": effective,
                   "effective_sha256": outdir.digest(effective)}}
    bare = flow_config(tmp_path, source=None)
    assert outdir.design_sources(bare)["config"] == {"path": None, "sha256": None, "effective": effective,
                                                     "effective_sha256": outdir.digest(effective)}
    assert outdir.run_inputs(cfg, samples="s.npz") == [cfg.source, cfg.keras_model, cfg.samples_path(), "s.npz"]


def test_a_project_is_required_current_in_one_sentence(tmp_path):
    cfg = flow_config(tmp_path)
    stage = outdir.project_stage(cfg)
    assert (stage.name, stage.in_place, stage.out_dir) == ("convert", False, cfg.output_dir)
    assert stage.key == outdir.digest(outdir.design_inputs(cfg))
    with pytest.raises(FlowError) as caught:
        outdir.require_project(cfg)
    assert str(caught.value) == f"No complete HLS project at {cfg.output_dir}: run `hlsflow convert` first."
    cfg.output_dir.parent.mkdir(parents=True)
    record, _ = stage.run(lambda into: write(Path(into) / "p.cpp") and outdir.Outcome(["p.cpp"]))
    assert outdir.require_project(cfg) == manifest_json(cfg.output_dir)["stages"]["convert"]
    with pytest.raises(FlowError) as caught:
        outdir.require_project(flow_config(tmp_path, part="xcu250-figd2104-2L-e"))
    assert str(caught.value) == (f"The HLS project at {cfg.output_dir} is not current (its hls4ml_settings changed): "
                                 "run `hlsflow convert` first.")


# ------------------------------------------------------------------ what others hand a user

def test_a_handed_manifest_cannot_claim_a_users_file(out, key):
    """Records signed with another key (or none) vouch for no file: a manifest.json someone hands
    over that names the user's thesis.tex as an output does not make the folder hlsflow's to replace."""
    record_stage(out, files={"result.txt": "1"})
    write(out / "thesis.tex", "mine")
    forged = manifest_json(out)
    forged["stages"]["csim"]["outputs"]["thesis.tex"] = "0" * 64
    (out / outdir.MANIFEST).write_text(json.dumps(forged))
    # Unsigned now, the record still vouches for result.txt as it recorded it, not for thesis.tex.
    assert outdir.foreign_files(out) == ["thesis.tex"]
    with pytest.raises(FlowError, match=r"thesis.tex, which no record signed with your key names .*remove that folder"):
        outdir.check_owned(out)
    write(out / "result.txt", "changed since")
    assert outdir.foreign_files(out) == ["result.txt", "thesis.tex"]
    signed = manifest_json(out)
    signed["stages"]["csim"] = signing.sign(signed["stages"]["csim"])  # the same claim, signed by this user
    (out / outdir.MANIFEST).write_text(json.dumps(signed))
    assert outdir.foreign_files(out) == []
    assert (out / "thesis.tex").read_text() == "mine"


def test_only_staging_folders_marked_with_the_users_key_are_removed(out):
    forged = write(out.parent / f".{out.name}.partial-abc" / outdir.STAGING_MARK, "").parent
    write(forged / "data.bin", "theirs")
    copied = write(out.parent / f".{out.name}.old-7" / outdir.STAGING_MARK, signing.vouch("staging:.proj.old-1")).parent
    with pytest.raises(RuntimeError):  # a run whose staging folder is left as a killed run leaves it
        with outdir.staging(out) as into:
            left = Path(into)
            os.rename(left, out.parent / ".proj.partial-killed")
            raise RuntimeError("killed")
    killed = out.parent / ".proj.partial-killed"
    (killed / outdir.STAGING_MARK).write_text(signing.vouch(f"staging:{killed.name}"))
    outdir.remove_dead_staging(out)
    assert not killed.exists()
    assert (forged / "data.bin").read_text() == "theirs" and copied.is_dir()  # unmarked, or marked for another name


def test_a_lock_file_of_that_name_that_is_not_hlsflows_is_never_removed(out):
    users = write(out.with_name(f".{out.name}.lock"), "my notes")
    with pytest.raises(FlowError, match=r"is not a lock file of your hlsflow runs.*move it"):
        with outdir.locked(out):
            pass
    assert users.read_text() == "my notes"
    users.unlink()
    with outdir.locked(out):
        assert signing.vouches(f"lock:{users.name}", users.read_text())
    assert not users.exists() and sorted(os.listdir(out.parent)) == ["proj"]


def test_the_write_probe_never_touches_a_file_of_the_users(out):
    users = write(out.parent / f".hlsflow-write-test-{os.getpid()}", "mine")
    outdir.check_writable(out)
    assert users.read_text() == "mine" and sorted(os.listdir(out.parent)) == [users.name, "proj"]
