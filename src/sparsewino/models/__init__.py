"""Models of the Winograd pruning papers (VGG-nagadomi, ConvPool-CNN-C, ResNet-18), small nets, AdderNet, small C3D."""
from .adder_net import adder_cnn
from .c3d import c3d_features, c3d_small
from .convpool import convpool_cnn_c
from .onnx_model import onnx_model
from .registry import MODELS, ModelEntry, available_models, create_model, model_entry, model_options, register_model
from .resnet import BasicBlock, ResNet, resnet18, resnet18_cifar, resnet18_cifar_max, resnet18_max
from .vgg import VGG, small_vgg, vgg_features, vgg_nagadomi

__all__ = ["create_model", "available_models", "register_model", "model_entry", "ModelEntry",
           "MODELS", "model_options",
           "vgg_nagadomi", "small_vgg", "vgg_features", "VGG", "convpool_cnn_c", "ResNet",
           "BasicBlock", "resnet18", "resnet18_max", "resnet18_cifar", "resnet18_cifar_max",
           "adder_cnn", "c3d_small", "c3d_features", "onnx_model"]
