"""Model shapes, registry, parameter counts and conversion of their eligible convolutions."""
import pytest
import torch
from torch import nn

from sparsewino.models import available_models, create_model, model_entry
from sparsewino.nn import WinogradConv2d, convert

CASES = [  # name, kwargs, input shape, classes
    ("small_vgg", {}, (2, 1, 28, 28), 10),
    ("small_vgg", {"widths": [8, "M", 12], "dropout": 0.2}, (1, 3, 9, 7), 4),
    ("vgg_nagadomi", {}, (2, 3, 32, 32), 10),
    ("vgg_nagadomi", {"input_size": 16, "batch_norm": False}, (2, 1, 16, 16), 7),
    ("convpool_cnn_c", {}, (2, 3, 32, 32), 100),
    ("convpool_cnn_c", {"width": 8, "dropout": 0.0}, (1, 2, 20, 20), 5),
    ("resnet18_cifar", {"width": 8}, (2, 3, 32, 32), 10),
    ("resnet18_cifar_max", {"width": 8}, (2, 3, 32, 32), 100),
    ("resnet18", {"width": 8}, (1, 3, 64, 64), 1000),
    ("resnet18_max", {"width": 8}, (1, 3, 64, 64), 12),
    ("resnet18_cifar_max", {"width": 4}, (2, 3, 13, 11), 10),      # odd sizes: pool matches shortcut
    ("resnet18_max", {"width": 4}, (1, 3, 20, 20), 3),
]


@pytest.mark.parametrize("name,kwargs,shape,classes", CASES)
def test_output_shape(name, kwargs, shape, classes):
    torch.manual_seed(0)
    model = create_model(name, in_channels=shape[1], num_classes=classes, **kwargs).eval()
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], classes) and torch.isfinite(out).all()


def count_convs(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name,expected_converted,expected_skipped", [
    ("small_vgg", 5, 0), ("vgg_nagadomi", 8, 0), ("convpool_cnn_c", 7, 2),
    ("resnet18_cifar", 17, 3),          # stride-2 3x3 convs decomposed; 1x1 projections stay
    ("resnet18_cifar_max", 17, 3),      # every 3x3 conv converted; only 1x1 projections stay
    ("resnet18", 17, 3),                # the 7x7/2 stem decomposed too
    ("resnet18_max", 17, 3),
])
def test_convert_eligible_convs(name, expected_converted, expected_skipped):
    model = create_model(name, width=8) if name.startswith("resnet") else create_model(name)
    model, report = convert(model, tile=4)
    assert len(report.converted) == expected_converted
    assert len(report.skipped) == expected_skipped
    assert sum(isinstance(m, WinogradConv2d) for m in model.modules()) == expected_converted


@pytest.mark.parametrize("name,shape", [("resnet18_cifar_max", (2, 3, 16, 16)), ("small_vgg", (2, 1, 28, 28)),
                                        ("convpool_cnn_c", (1, 3, 16, 16))])
def test_converted_model_computes_the_same(name, shape):
    torch.manual_seed(1)
    kwargs = {"width": 4} if name.startswith("resnet") else ({"width": 6} if name == "convpool_cnn_c" else {})
    model = create_model(name, in_channels=shape[1], **kwargs).double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    expected = model(x)
    converted, _ = convert(model, tile=4, domain="winograd")
    torch.testing.assert_close(converted(x), expected, rtol=1e-9, atol=1e-9)


def test_max_variant_has_only_stride_one_3x3():
    model = create_model("resnet18_cifar_max", width=4)
    for name, conv in count_convs(model):
        if conv.kernel_size == (3, 3):
            assert conv.stride == (1, 1), name
    assert isinstance(model.layer2[0].branch.pool, nn.MaxPool2d)
    assert not hasattr(model.layer1[0].branch, "pool")


def test_parameter_counts_match_the_papers():
    small = sum(p.numel() for p in create_model("small_vgg", in_channels=1).parameters())
    assert 35_000 < small < 37_500                         # docs/pipeline.md: 36k
    resnet = sum(p.numel() for p in create_model("resnet18", num_classes=1000).parameters())
    assert resnet == 11_689_512                            # torchvision's resnet18
    macs = 0
    model = create_model("small_vgg", in_channels=1)

    def hook(module, inputs, output):
        nonlocal macs
        macs += output.numel() * module.in_channels * 9

    for _, conv in count_convs(model):
        conv.register_forward_hook(hook)
    model(torch.zeros(1, 1, 28, 28))
    assert 5.4e6 < macs < 5.6e6                            # docs/pipeline.md: 5.5M MACs/image


def test_registry_errors():
    assert {"small_vgg", "vgg_nagadomi", "convpool_cnn_c", "resnet18_max"} <= set(available_models())
    assert model_entry("resnet18-cifar-max").input_size == 32
    with pytest.raises(ValueError, match="unknown model"):
        create_model("alexnet")
    with pytest.raises(ValueError, match="unexpected keyword"):
        create_model("small_vgg", depth=3)
    with pytest.raises(ValueError, match="divisible by 8"):
        create_model("vgg_nagadomi", input_size=30)
    with pytest.raises(ValueError, match="positive ints"):
        create_model("small_vgg", widths=[8, "X"])
