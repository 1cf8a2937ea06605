"""The same rules on every command: --names-from, several paths, exit codes, refusals,
completion, and the small things a new user meets first."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from live_models import spec

import paramctl
from paramctl import ExitCode

SELECTING = ["list", "shared", "check", "init"]


def command_line(command, path, tmp_path):
    """The command run on ``path``, as a read (``init`` as a dry run)."""
    return [command, path, "--dry-run", "-s", "zeros"] if command == "init" else [command, path]


# -- --names-from ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", SELECTING)
def test_names_from_selects_on_every_command(cli, samples, tmp_path, command):
    names = tmp_path / "names.txt"
    names.write_text("0.weight\n# a comment\n\n2.weight\n")
    args = command_line(command, samples / "mlp.pt", tmp_path)
    result = cli(*args, "--names-from", names, "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    if command == "check":
        assert document["tensors"] == 2
    elif command == "shared":
        assert document["summary"]["tensors"] == 2
    else:
        assert [row["name"] for row in document["tensors"]] == ["0.weight", "2.weight"]


@pytest.mark.parametrize("command", SELECTING)
def test_names_from_with_a_name_not_in_the_file_exits_1_on_every_command(cli, samples, tmp_path, command):
    names = tmp_path / "names.txt"
    names.write_text("0.weight\n0.wieght\n")
    result = cli(*command_line(command, samples / "mlp.pt", tmp_path), "--names-from", names)
    assert result.exit_code == ExitCode.NEGATIVE
    assert "--names-from lists 1 name not in" in result.stderr and "did you mean 0.weight?" in result.stderr


def test_names_from_selects_the_parameters_grads_probes(cli, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("2.weight\n")
    result = cli(
        "grads", "--model", spec("mlp"), "--input-shape", "2,4", "--names-from", names, "-f", "names"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["2.weight"]


# -- several paths ------------------------------------------------------------------------------


@pytest.fixture
def two(samples, tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    shutil.copy(samples / "mlp.pt", first)
    shutil.copy(samples / "tied_sequential.pt", second)
    return first, second


def test_list_of_several_files_gives_a_table_per_file(cli, two):
    text = cli("list", *two, "-f", "table", env={"COLUMNS": "100"}).stdout
    assert text.count("┏") == 2
    assert text.index("a.pt (torch-zip)") < text.index("b.pt (torch-zip)")


def test_several_files_in_pipes_keep_one_header_and_say_which_file(cli, two):
    lines = cli("list", *two).stdout.splitlines()
    assert lines[0] == "file\tname\tshape\tdtype\tnumel\tbytes\tshared_with"
    assert [line.split("\t")[0] for line in lines[1:]] == [str(two[0])] * 4 + [str(two[1])] * 2
    records = [json.loads(line) for line in cli("list", *two, "-f", "jsonl").stdout.splitlines()]
    assert {record["file"] for record in records} == {str(two[0]), str(two[1])}


def test_several_files_in_json_are_a_list_of_one_object_per_file(cli, two):
    for command in ("list", "shared", "check", "show"):
        args = [command, *two, "0.weight"] if command == "show" else [command, *two]
        documents = json.loads(cli(*args, "-f", "json").stdout)
        assert [document["file"] for document in documents] == [str(two[0]), str(two[1])], command


def test_one_exit_code_for_several_files_is_the_worst(cli, two, tmp_path):
    nan = tmp_path / "nan.pt"
    torch.save({"w": torch.tensor([float("nan")])}, nan)
    assert cli("check", *two).exit_code == ExitCode.OK
    assert cli("check", *two, nan).exit_code == ExitCode.NEGATIVE
    missing = cli("check", two[0], tmp_path / "missing.pt", nan, "-f", "json")
    assert missing.exit_code == ExitCode.IO
    # The files that could be read are all answered; the one that could not is said once.
    documents = json.loads(missing.stdout)
    assert [d.get("ok") for d in documents] == [True, None, False]
    assert documents[1] == {
        "file": str(tmp_path / "missing.pt"),
        "error": f"{tmp_path / 'missing.pt'}: No such file or directory",
        "exit_code": 5,
    }
    assert missing.stderr.count("paramctl: error:") == 1


def test_init_changes_several_files_in_place_and_refuses_one_output_for_many(cli, two):
    before = [torch.load(path, weights_only=True) for path in two]
    result = cli("init", *two, "-m", "0.weight", "-s", "zeros", "--in-place")
    assert result.exit_code == 0, result.stderr
    for path, old in zip(two, before, strict=True):
        new = torch.load(path, weights_only=True)
        assert not new["0.weight"].any() and old["0.weight"].any()
    refused = cli("init", *two, "-s", "zeros", "-o", two[0].parent / "out.pt")
    assert refused.exit_code == ExitCode.USAGE and "--in-place" in refused.stderr


# -- exit codes -----------------------------------------------------------------------------


def test_a_custom_init_returning_the_wrong_shape_exits_3(cli, samples, tmp_path):
    code = tmp_path / "nets.py"
    code.write_text("import torch\n\ndef wrong(tensor, generator):\n    return torch.zeros(3)\n")
    result = cli("init", samples / "mlp.pt", "-m", "0.weight", "-s", f"{code}:wrong", "-o", tmp_path / "o.pt")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "returned Tensor (3,)" in result.stderr and "(3, 4)" in result.stderr


def test_a_missing_model_factory_is_a_usage_error_in_the_users_words(cli, tmp_path):
    code = tmp_path / "nets.py"
    code.write_text("import torch\n\ndef make():\n    return torch.nn.Linear(2, 2)\n")
    result = cli("list", "--model", f"{code}:nosuch")
    assert result.exit_code == ExitCode.USAGE
    assert "_paramctl_user_" not in result.stderr
    assert f"{code} has no attribute 'nosuch'; it defines make" in result.stderr
    typo = cli("list", "--model", f"{code}:mkae")
    assert typo.exit_code == ExitCode.USAGE and "did you mean make?" in typo.stderr


# -- refusing pickles --------------------------------------------------------------------------


class RunsAShell:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_a_pickle_that_would_run_a_shell_is_refused_without_offering_trust(cli, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "payload": RunsAShell()}, path)
    for command in (["list", path], ["init", path, "-s", "zeros", "-o", tmp_path / "o.pt"]):
        result = cli(*command)
        assert result.exit_code == ExitCode.UNSAFE
        assert "would run a shell command (posix.system)" in result.stderr
        assert "--trust" not in result.stderr


def test_a_pickled_module_is_refused_with_the_offer_of_trust(cli, tmp_path):
    path = tmp_path / "full.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    result = cli("list", path)
    assert result.exit_code == ExitCode.UNSAFE
    assert "if you trust it, --trust loads it" in result.stderr
    assert "torch.nn.modules.linear.Linear" in result.stderr


@pytest.mark.parametrize(
    ("global_name", "said"),
    [
        ("subprocess.Popen", "start a program"),
        ("builtins.eval", "execute Python code"),
        ("builtins.exec", "execute Python code"),
        ("os.execv", "replace itself with another program"),
        ("socket.create_connection", "open network connections"),
    ],
)
def test_plainly_dangerous_globals_say_what_they_would_do(global_name, said):
    from paramctl.live.trust import harm

    assert harm(global_name) == said


# -- completion ---------------------------------------------------------------------------------


def test_shell_completion_can_be_shown_and_installed(cli):
    shown = cli("--show-completion", "bash")
    assert shown.exit_code == 0 and "_PARAMCTL_COMPLETE=complete_bash" in shown.stdout
    assert "--install-completion" in cli("--help").stdout


def test_completing_after_show_path_lists_the_tensor_names(samples):
    from typer.testing import CliRunner

    from paramctl.cli import app

    def complete(words: str) -> list[str]:
        env = {
            "_PARAMCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        }
        return CliRunner().invoke(app, [], env=env, prog_name="paramctl").stdout.split()

    assert complete(f"paramctl show {samples / 'mlp.pt'} ") == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert complete(f"paramctl show {samples / 'mlp.pt'} 2.") == ["2.weight", "2.bias"]
    # No checkpoint on the line yet: nothing, so the shell completes file names.
    assert complete("paramctl show sample") == []


# -- small things --------------------------------------------------------------------------------


def test_show_suggests_the_name_meant(cli, samples):
    result = cli("show", samples / "mlp.pt", "0.wieght")
    assert result.exit_code == ExitCode.NEGATIVE
    assert "no tensor named '0.wieght'; did you mean 0.weight?" in result.stderr


def test_an_unknown_scheme_suggests_the_one_meant(cli, samples, tmp_path):
    result = cli("init", samples / "mlp.pt", "-s", "nromal", "-o", tmp_path / "o.pt")
    assert result.exit_code == ExitCode.USAGE
    assert "unknown scheme 'nromal'; did you mean normal?" in result.stderr


def test_shared_without_sharing_prints_no_empty_frame(cli, samples):
    result = cli("shared", samples / "mlp.pt", "-f", "table")
    assert result.exit_code == 0
    assert result.stdout == "no shared storages among 4 tensors\n"


def test_check_without_values_counts_the_tensors_it_did_not_read(cli, samples):
    result = cli("check", samples / "cnn.safetensors", "--no-values", "-f", "json")
    assert json.loads(result.stdout)["tensors"] == 8
    line = cli("check", samples / "cnn.safetensors", "--no-values").stderr
    assert "in 8 tensors (10.04 KiB of values, not read)" in line


def test_show_usage_names_its_arguments_plainly(cli):
    assert "Usage: paramctl show [OPTIONS] PATH... NAME" in cli("show", "--help").stdout


def test_urls_are_echoed_intact(cli):
    result = cli("list", "https://example.com/models/m.pt")
    assert "https://example.com/models/m.pt" in result.stderr


def test_counts_of_one_are_singular(cli, samples, tmp_path):
    path = tmp_path / "one.pt"
    torch.save({"w": torch.ones(1)}, path)
    assert cli("list", path, "-f", "table").stdout.splitlines()[-2] == "1 tensor, 1 element, 4 B"
    assert "histogram of 1 finite value\n" in cli("show", path, "w").stdout
    assert "0 errors, 0 warnings in 1 tensor" in cli("check", path).stderr
    shared = cli("shared", samples / "tied_sequential.pt").stderr
    assert shared.startswith("1 group, 2 names")


def test_jsonl_with_extras_says_the_kind_of_each_record(cli, samples):
    records = [
        json.loads(line)
        for line in cli("list", samples / "training.pt", "--extras", "-f", "jsonl").stdout.splitlines()
    ]
    assert {record["kind"] for record in records} == {"tensor", "extra"}
    assert [r["name"] for r in records if r["kind"] == "extra"][-1] == "epoch"


def test_stats_returns_the_rows_of_list_stats(samples):
    rows = paramctl.open(samples / "mlp.pt").stats()
    assert isinstance(rows, list) and [row.name for row in rows] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]
    assert set(rows[0].stats) == {"mean", "std", "min", "max", "absmax", "norm", "zeros", "nan", "inf"}


def test_the_package_namespace_shows_only_its_api():
    public = {name for name in dir(paramctl) if not name.startswith("_")}
    assert not {"Any", "TYPE_CHECKING", "os", "annotations"} & public
    assert {"open", "collect", "read_checkpoint", "CheckpointFile", "ExitCode"} <= public
