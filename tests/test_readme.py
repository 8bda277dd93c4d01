"""The README's quickstart runs exactly as written and prints what it says."""
import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quickstart():
    assert python_blocks(), "README.md lost its ```python quickstart block"


def test_readme_states_expected_outputs():
    expected = re.findall(r"#\s*->", "".join(python_blocks()))
    assert len(expected) >= 5


def test_readme_python_blocks_run_as_written():
    for block in python_blocks():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
        printed = out.getvalue().splitlines()
        # every "print(...)  # -> expected" comment must match a printed line
        expectations = [c.strip() for c in re.findall(r"^\s*print\(.*\)\s*#\s*->\s*(.+)$", block, flags=re.M)]
        # each expected line must be printed, in order ("~..." marks an approximate value)
        remaining = [line.strip() for line in printed]
        for expected in expectations:
            if expected.startswith("~"):
                continue
            assert expected in remaining, (expected, printed)
            remaining = remaining[remaining.index(expected) + 1:]


def test_readme_says_where_the_command_is_and_what_it_needs():
    text = README.read_text()
    assert ".venv/bin/sparsewino" in text and "source .venv/bin/activate" in text
    assert 'pip install ".[pipeline]"' in text
