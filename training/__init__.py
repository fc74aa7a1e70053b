"""Training: target encoders (numpy) and losses (torch, in ``training.losses``), plus

``augment`` (exact-geometry augmentation), ``data`` (face sets and sources), ``pseudo_labels``
(teacher labelling), ``objectives`` (encoding + loss per decoder), ``trainer`` (``edgemark
train``), ``tune`` (decoder parameters on validation data) and ``compare`` (decoder variants
on AFLW2000-3D).

Losses and the trainer live in submodules so that encoding targets never needs torch.
"""
from .encoders import (SHR_SIGMA, SHR_TEMPERATURE, SHR_WINDOW, encode_h3r, encode_pipnet, encode_shr,
                       h3r_expected_map, pipnet_meanface)

__all__ = ["SHR_SIGMA", "SHR_TEMPERATURE", "SHR_WINDOW", "encode_h3r", "encode_pipnet", "encode_shr",
           "h3r_expected_map", "pipnet_meanface"]
