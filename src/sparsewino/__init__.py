"""sparsewino: sparse Winograd convolution for PyTorch."""
