"""Training-side helpers: target encoders (numpy) and losses (torch, in ``training.losses``).

Losses live in a submodule so that encoding targets never needs torch.
"""
from .encoders import (SHR_SIGMA, SHR_TEMPERATURE, SHR_WINDOW, encode_h3r, encode_pipnet, encode_shr,
                       h3r_expected_map, pipnet_meanface)

__all__ = ["SHR_SIGMA", "SHR_TEMPERATURE", "SHR_WINDOW", "encode_h3r", "encode_pipnet", "encode_shr",
           "h3r_expected_map", "pipnet_meanface"]
