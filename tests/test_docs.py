"""The docs stand alone: every Markdown file they (and the README) cite is in the repository."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ("summary.md",)                 # written by a run into its report directory


def test_every_cited_markdown_file_exists():
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in set(re.findall(r"[\w./-]*\.md\b", doc.read_text())):
            if Path(name).name in GENERATED:
                continue
            if not any((base / name).is_file() for base in (doc.parent, ROOT, ROOT / "docs")):
                missing.append(f"{doc.relative_to(ROOT)} cites {name}")
    assert not missing, missing


def test_package_docstrings_cite_only_existing_docs():
    missing = [f"{path.relative_to(ROOT)}: {name}"
               for path in (ROOT / "src").rglob("*.py")
               for name in re.findall(r"\b([\w-]+\.md)\b", path.read_text())
               if not (ROOT / "docs" / name).is_file() and not (ROOT / name).is_file()
               and name not in GENERATED]
    assert not missing, missing
