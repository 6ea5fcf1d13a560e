"""How ``openood-tanl`` ends: a user's mistake is one line and exit 2, a bug of the package is one line saying so
and exit 1, ``--debug`` re-raises; the package's validations raise ``UserError``; the parser's help is generated
from the registries."""
import errno
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import openood_tanl
from openood_tanl import cli
from openood_tanl.core.errors import MissingDependencyError, MissingFileError, SetupError, UserError, UserTypeError

HINT = "(run with --debug, or OPENOOD_TANL_DEBUG=1, for the traceback)"


def _demo(monkeypatch, tmp_path, capsys, error: Exception, *extra: str) -> tuple[int, list[str]]:
    """``demo`` with its first step raising ``error``: (exit code, stderr lines)."""
    def fail(self):
        raise error

    monkeypatch.setattr(cli.commands.Demo, "configure", fail)
    capsys.readouterr()
    code = cli.main(["demo", "--out", str(tmp_path / "out"), *extra])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyError("boom"), TypeError("boom"), OSError("boom")])
def test_an_internal_error_exits_1_and_says_it_is_a_bug(monkeypatch, tmp_path, capsys, error):
    code, lines = _demo(monkeypatch, tmp_path, capsys, error)
    assert code == cli.ExitStatus.ERROR_INTERNAL == 1
    assert lines[0] == ("openood-tanl demo: internal error (a bug in openood-tanl; please report it): "
                        f"{type(error).__name__}: {error}")
    assert lines[1:] == [HINT]  # no traceback
    assert not (tmp_path / "out").exists()  # the folder it created, left empty, is removed as for any failure


@pytest.mark.parametrize("error", [UserError("bad thing"), UserTypeError("bad thing"), MissingFileError("bad thing"),
                                   cli.UsageError("bad thing")])
def test_a_user_error_exits_2_in_one_line(monkeypatch, tmp_path, capsys, error):
    code, lines = _demo(monkeypatch, tmp_path, capsys, error)
    assert code == cli.ExitStatus.ERROR_USER == 2
    assert lines == ["openood-tanl demo: error: bad thing", HINT]


@pytest.mark.parametrize("error", [PermissionError(errno.EACCES, "Permission denied", "/data/lists/id.txt"),
                                   OSError(errno.ENOSPC, "No space left on device", "/out/results.csv"),
                                   SetupError("could not download the weights")])
def test_the_machine_s_problems_are_the_user_s(monkeypatch, tmp_path, capsys, error):
    """A permission or disk error on a named file, or a machine not set up (offline weights, torchrun's variables),
    is one line and exit 2."""
    code, lines = _demo(monkeypatch, tmp_path, capsys, error)
    assert code == 2 and lines[0].startswith("openood-tanl demo: error: ") and str(error) in lines[0]


def test_an_unknown_method_exits_2(tmp_path, capsys):
    code = cli.main(["eval", "--method", "tanll", "--benchmark", "four-ood", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "openood-tanl eval: error: unknown method 'tanll' (did you mean 'tanl'?)" in err


def test_debug_re_raises(monkeypatch, tmp_path, capsys):
    with pytest.raises(KeyError, match="boom"):
        _demo(monkeypatch, tmp_path, capsys, KeyError("boom"), "--debug")
    monkeypatch.setenv("OPENOOD_TANL_DEBUG", "1")
    with pytest.raises(UserError, match="bad thing"):
        _demo(monkeypatch, tmp_path, capsys, UserError("bad thing"))


def test_an_os_error_while_writing_the_results_is_the_users(monkeypatch, tmp_path, capsys):
    def refused(self, result):
        raise PermissionError(13, "Permission denied", str(self.out / "results.csv"))

    monkeypatch.setattr(cli.commands.Demo, "replay", lambda self: None)
    monkeypatch.setattr(cli.commands.Demo, "write", refused)
    code = cli.main(["demo", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write the results into {tmp_path / 'out'}" in err and "Permission denied" in err


def test_the_parser_names_every_method_and_benchmark_of_the_registries():
    from openood_tanl.evaluation.datasets import KNOWN_BENCHMARKS

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for command, flag in (("eval", "--method"), ("leaderboard", "--methods"), ("sweep", "--methods")):
        action = next(a for a in subparsers[command]._actions if flag in a.option_strings)
        assert action.help.split(" | ")[:-1] == openood_tanl.list_methods(), command
    for command, flag in (("extract", "--benchmark"), ("eval", "--benchmark"), ("sweep", "--benchmark"),
                          ("leaderboard", "--benchmarks")):
        action = next(a for a in subparsers[command]._actions if flag in a.option_strings)
        assert all(name in action.help for name in KNOWN_BENCHMARKS), (command, action.help)


def test_python_dash_m_runs_the_command():
    env_root = str(Path(__file__).resolve().parents[2])
    result = subprocess.run([sys.executable, "-m", "openood_tanl.cli", "--help"], capture_output=True, text=True,
                            cwd=env_root, timeout=120)
    assert result.returncode == 0 and "usage: openood-tanl" in result.stdout


# ---------------------------------------------------------------------------- the library raises UserError
def test_validations_raise_user_error(tmp_path):
    from openood_tanl.evaluation.datasets import load_benchmark
    from openood_tanl.yaml_files import load_yaml

    assert openood_tanl.UserError is UserError
    with pytest.raises(UserError, match=r"gap must be in \[0, 1\]"):
        openood_tanl.configure("tanl", gap=2)
    with pytest.raises(UserTypeError, match="gap must be a number") as raised:
        openood_tanl.configure("tanl", gap="0.5")
    assert isinstance(raised.value, TypeError)
    with pytest.raises(UserError, match="unknown method 'tanll'"):
        openood_tanl.configure("tanll")
    spec = tmp_path / "spec.yml"
    spec.write_text("name: b\nid: {folder: nowhere}\nood: {far: {o: {folder: nowhere}}}\n")
    with pytest.raises(MissingFileError, match="nowhere does not exist") as raised:
        load_benchmark(spec)
    assert isinstance(raised.value, FileNotFoundError)
    bad = tmp_path / "bad.yml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match=f"{bad} is not valid YAML at line"):
        load_yaml(bad, "benchmark spec")
    with pytest.raises(UserError, match="is not valid YAML"):
        load_benchmark(bad)
    config = tmp_path / "ViT-Q-1.json"
    config.write_text("{not json")
    with pytest.raises(UserError, match=f"model_config {config} is not an open_clip model-config JSON"):
        openood_tanl.networks.plan_text_bank("ViT-Q-1", None, "imagenet", model_config=config)
    config.write_text('{"embed_dim": 8}')
    with pytest.raises(UserError, match=r"it lacks \['vision_cfg', 'text_cfg'\]"):
        openood_tanl.networks.plan_text_bank("ViT-Q-1", None, "imagenet", model_config=config)


def test_the_error_types_derive_from_the_builtins_callers_catch():
    from openood_tanl.evaluation.datasets import UnreadableImageError

    assert issubclass(UserError, ValueError) and issubclass(cli.UsageError, UserError)
    assert issubclass(UnreadableImageError, UserError)
    assert issubclass(MissingFileError, FileNotFoundError) and issubclass(MissingDependencyError, ImportError)


@pytest.mark.parametrize("error", [UserError("m"), UserTypeError("m"), MissingFileError("m"),
                                   MissingDependencyError("m"), cli.UsageError("m")])
def test_a_user_error_keeps_its_type_through_a_process_pool(error):
    copy = pickle.loads(pickle.dumps(error))  # how a ProcessPoolExecutor worker's exception comes back
    assert type(copy) is type(error) and str(copy) == "m"


class _Unreadable:
    def __len__(self):
        return 1

    def __getitem__(self, index):
        from openood_tanl.evaluation.datasets import UnreadableImageError

        raise UnreadableImageError("cannot read image x.png (empty file); replace the file")


def test_a_user_error_in_a_dataloader_worker_exits_2_with_its_own_message(monkeypatch, capsys, tmp_path):
    import torch

    from openood_tanl.evaluation.datasets import UnreadableImageError

    with pytest.raises(UnreadableImageError) as raised:
        next(iter(torch.utils.data.DataLoader(_Unreadable(), num_workers=1)))
    assert "Original Traceback" in str(raised.value)
    code, lines = _demo(monkeypatch, tmp_path, capsys, raised.value)
    assert code == 2 and lines == ["openood-tanl demo: error: cannot read image x.png (empty file); replace the file",
                                   HINT]
