"""The README's quickstart runs exactly as written and prints what it says."""
import contextlib
import io
import re
from pathlib import Path

#: "~X" in a README expectation: the printed number lies within this factor of X either way
#: (fp32 rounding errors vary with the CPU's kernels and thread count, not by orders of magnitude).
APPROXIMATE_FACTOR = 5.0

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quickstart():
    assert python_blocks(), "README.md lost its ```python quickstart block"


def test_readme_states_expected_outputs():
    expected = re.findall(r"#\s*->", "".join(python_blocks()))
    assert len(expected) >= 5


def test_readme_approximate_expectations_are_checked():
    approximate = re.findall(r"#\s*->\s*~(\S+)", "".join(python_blocks()))
    assert len(approximate) >= 2 and all(float(v) > 0 for v in approximate)


def test_readme_python_blocks_run_as_written(monkeypatch):
    monkeypatch.delenv("SPARSEWINO_ENGINE_BACKEND", raising=False)   # as a user runs them
    for block in python_blocks():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
        printed = out.getvalue().splitlines()
        # every "print(...)  # -> expected" comment must match a printed line, in order;
        # "~X" marks an approximate number: the line the print makes holds a value close to X
        expectations = re.findall(r"^\s*print\((f?\"[^\"{]*)?.*\)\s*#\s*->\s*(.+)$", block, flags=re.M)
        remaining = [line.strip() for line in printed]
        for start, expected in expectations:
            expected = expected.strip()
            if expected.startswith("~"):
                prefix = start.lstrip("f").lstrip('"')
                line = next((l for l in remaining if l.startswith(prefix)), None)
                assert line is not None, (prefix, printed)
                value, stated = float(re.findall(r"[-+0-9.e]+", line)[-1]), float(expected[1:])
                assert stated / APPROXIMATE_FACTOR <= value <= stated * APPROXIMATE_FACTOR, (line, expected)
                remaining = remaining[remaining.index(line) + 1:]
                continue
            assert expected in remaining, (expected, printed)
            remaining = remaining[remaining.index(expected) + 1:]


def test_readme_says_where_the_command_is_and_what_it_needs():
    text = README.read_text()
    assert ".venv/bin/sparsewino" in text and "source .venv/bin/activate" in text
    assert 'pip install ".[pipeline]"' in text
