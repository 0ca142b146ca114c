"""docs/config.md is generated from the config dataclasses and is current; every key says what it means."""
import subprocess
import sys
from dataclasses import dataclass

from infd.config_docs import document, field_doc, reference_rows, stage_references
from infd.training.ae_loop import AETrainConfig

from tool_testing import ROOT


def test_the_committed_reference_is_current():
    assert (ROOT / "docs" / "config.md").read_text() == document(), \
        "docs/config.md is out of date: python -m infd.config_docs > docs/config.md"


def test_every_key_has_a_type_a_default_and_a_meaning():
    for stage in stage_references().values():
        rows = [line for line in stage.splitlines() if line.startswith("| `")]
        assert len(rows) > 40
        assert all(line.rstrip(" |").split(" | ")[-1].strip() for line in rows), \
            [line for line in rows if not line.rstrip(" |").split(" | ")[-1].strip()]


def test_rows_follow_nesting_and_the_parents_defaults():
    rows = {key: (tp, default) for key, tp, default, _ in reference_rows(AETrainConfig)}
    assert rows["data.patches.max_size"] == ("int | null", "1024")
    assert rows["data.mode"][1] == "'patches'" and rows["val_data.mode"][1] == "'whole'"  # val_data's own default
    assert rows["mixed_precision"][0] == "'no' | 'bf16' | 'fp16'"


def test_meanings_come_from_comments_or_docstring_entries():
    @dataclass
    class Example:
        """An example.

        alpha, beta: two numbers
            on two lines.
        gamma: the third.
        """

        alpha: int = 1
        beta: int = 2
        gamma: int = 3  # said here instead
        delta: int = 4

    assert field_doc(Example, "alpha") == field_doc(Example, "beta") == "two numbers on two lines."
    assert field_doc(Example, "gamma") == "said here instead" and field_doc(Example, "delta") == ""


def test_comment_lines_above_a_field_document_it_and_a_bare_dataclass_has_no_entries():
    @dataclass
    class Bare:  # no docstring: dataclasses make one of the signature ("Bare(alpha: 'int' = 1, ...)")
        alpha: int = 1
        # what beta is,
        # over two lines
        beta: int = 2
        gamma: int = 3

    assert field_doc(Bare, "alpha") == "" and field_doc(Bare, "gamma") == ""
    assert field_doc(Bare, "beta") == "what beta is, over two lines"


def test_help_config_prints_the_stage_reference():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "dm", "--help-config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stdout == stage_references()["dm"], proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "ae"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--config is required" in proc.stderr
