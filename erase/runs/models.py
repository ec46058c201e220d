"""Reconstruction networks from ``fastmri.models``, sized by a ModelConfig.

Both networks take what fastMRI's VarNetDataTransform gives (masked k-space, mask, number of
low frequencies) and return a magnitude image, so the loop, the losses and the metrics never
need to know which one they are training.
"""
from __future__ import annotations

import fastmri
import torch
from fastmri.data import transforms
from fastmri.models import Unet, VarNet
from torch import nn

from ..config import ConfigError, ModelConfig

ARCHITECTURES = ("varnet", "unet")


class ZeroFilledUnet(nn.Module):
    """fastMRI's U-Net on the zero-filled RSS image, normalised per image as fastMRI does."""

    def __init__(self, chans: int, pools: int):
        super().__init__()
        self.unet = Unet(in_chans=1, out_chans=1, chans=chans, num_pool_layers=pools)

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor,
                num_low_frequencies=None) -> torch.Tensor:
        image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(masked_kspace)), dim=1)
        mean = image.mean(dim=(-2, -1), keepdim=True)
        std = image.std(dim=(-2, -1), keepdim=True) + 1e-11
        out = self.unet(((image - mean) / std).unsqueeze(1)).squeeze(1)
        return out * std + mean


def build_model(config: ModelConfig) -> nn.Module:
    """The network a config names; VarNet is the paper's E2E-VarNet."""
    if config.arch == "varnet":
        return VarNet(num_cascades=config.cascades, sens_chans=config.sens_chans,
                      sens_pools=config.sens_pools, chans=config.chans, pools=config.pools)
    if config.arch == "unet":
        return ZeroFilledUnet(chans=config.chans, pools=config.pools)
    raise ConfigError(f"unknown model architecture {config.arch!r}: choose one of "
                      f"{', '.join(ARCHITECTURES)}")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the paper's 12-cascade VarNet has 29.9M)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reconstruct(model: nn.Module, sample) -> torch.Tensor:
    """The model's image for a batch, cropped to the target's size as fastMRI does.

    fastMRI's VarNet takes one number of low frequencies (centre lines) for a whole batch;
    each slice keeps its own mask, but all must share that number.
    """
    low = sample.num_low_frequencies
    if torch.is_tensor(low) and low.numel() > 1:
        if not bool((low == low.reshape(-1)[0]).all()):
            raise ValueError("the slices of a batch must share their number of centre lines")
        low = int(low.reshape(-1)[0])
    output = model(sample.masked_kspace, sample.mask, low)
    return transforms.center_crop(output, tuple(sample.target.shape[-2:]))


def zero_filled(sample) -> torch.Tensor:
    """The zero-filled RSS image of a batch: the baseline every model must beat."""
    image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(sample.masked_kspace)), dim=1)
    return transforms.center_crop(image, tuple(sample.target.shape[-2:]))
