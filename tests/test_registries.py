"""Every extension point is one Registry of the same shape, and the docs tables are generated from them."""
from pathlib import Path

import pytest
import torch
from torch import nn

from sparsewino import doc_tables
from sparsewino.data.registry import DATASETS, dataset_spec
from sparsewino.errors import UnknownNameError, UserError
from sparsewino.models.registry import MODELS, model_entry
from sparsewino.nn import LAYER_KINDS, WinogradConv2d, WinogradConv3d, convert
from sparsewino.prune import METHODS
from sparsewino.registry import Registry

DOCS = Path(__file__).resolve().parents[1] / "docs"
REGISTRIES = {"pruning method": METHODS, "layer kind": LAYER_KINDS, "dataset": DATASETS, "model": MODELS}


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_registries_share_one_shape(kind):
    registry = REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind and len(registry) >= 2
    for name, entry in registry.items():
        assert entry.name == name and entry.description, (kind, name)
        assert registry.lookup(name) is entry
    with pytest.raises(UnknownNameError, match=f"unknown {kind} 'nope'; choose one of {registry.names()[0]}"):
        registry.lookup("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry[registry.names()[0]])


def test_unknown_names_are_user_errors_and_aliases_resolve():
    assert issubclass(UnknownNameError, UserError) and issubclass(UnknownNameError, ValueError)
    assert dataset_spec("CIFAR-10").name == "cifar10" and model_entry("resnet18-max").name == "resnet18_max"


def test_docs_tables_are_generated_from_the_registries():
    stale = doc_tables.update_docs(DOCS, check=True)
    assert stale == [], f"run `make docs` (python -m sparsewino.doc_tables): stale tables in {stale}"
    for name in ("magnitude", "spatial_winograd", "native"):
        assert f"| `{name}` |" in doc_tables.methods_table()
    assert "`nn.Conv3d` | `WinogradConv3d`" in doc_tables.layer_kinds_table()
    assert "| `fashion-mnist` |" in doc_tables.datasets_table()
    assert "| `small_vgg` |" in doc_tables.models_table() and "`widths`" in doc_tables.models_table()


def test_doc_tables_check_fails_on_a_stale_table(tmp_path, capsys):
    for file in sorted({file for file, _ in doc_tables.TABLES.values()}):
        (tmp_path / file).write_text((DOCS / file).read_text())
    page = tmp_path / "layers.md"
    page.write_text(page.read_text().replace("| `conv3d` |", "| `conv3e` |"))
    assert doc_tables.main(["--docs", str(tmp_path), "--check"]) == 1
    assert "layers.md: stale generated table" in capsys.readouterr().out
    assert doc_tables.main(["--docs", str(tmp_path)]) == 0
    assert doc_tables.main(["--docs", str(tmp_path), "--check"]) == 0
    page.write_text("no tables here\n")
    with pytest.raises(ValueError, match="no generated block for \\['layer_kinds'\\]"):
        doc_tables.update_docs(tmp_path)


def test_convert_reads_the_layer_kind_registry():
    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.Conv3d(2, 2, 3))
    kind = LAYER_KINDS.unregister("conv3d")
    try:
        _, report = convert(model)
        assert report.converted == ["0"] and "1" not in report.skipped
        assert isinstance(model[1], nn.Conv3d)
    finally:
        LAYER_KINDS.register(kind)
    _, report = convert(model)
    assert isinstance(model[1], WinogradConv3d) and isinstance(model[0], WinogradConv2d)
    assert report.converted == ["1"]
    assert torch.isfinite(model[1](torch.randn(1, 2, 4, 4, 4))).all()
