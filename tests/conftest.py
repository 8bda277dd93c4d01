"""Shared test settings: deterministic, single-threaded torch, hypothesis profile."""
import os

import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(int(os.environ.get("SPARSEWINO_TEST_THREADS", "1")))
settings.register_profile("default", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
