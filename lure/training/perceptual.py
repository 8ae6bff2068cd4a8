"""U2Fusion-style perceptual term on ImageNet VGG16 features.

VGG16 weights cannot be downloaded here. :func:`load_vgg16_features` reads torchvision's
``vgg16-397923af.pth`` (keys ``features.N.weight``) from a configured path or the torch hub
cache, and fails with a message naming the missing file and where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lure.training.precision import float32_loss

VGG16_FILE = "vgg16-397923af.pth"
# torchvision's VGG16 "D" configuration; "M" = 2x2 max-pool.
_VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# indices (in torchvision's `features` Sequential) of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_TAPS = (3, 8, 15, 22, 29)
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class VGG16Features(nn.Module):
    """The convolutional part of VGG16 returning the five ``reluK_last`` feature maps."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``image`` (B, 1 or 3, H, W) in [0,1] -> list of 5 feature maps."""
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        x = (image - _MEAN.to(image)) / _STD.to(image)
        taps = []
        for idx, layer in enumerate(self.features):
            x = layer(x)
            if idx in _TAPS:
                taps.append(x)
        return taps


def default_vgg16_path() -> Path:
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return hub / "hub" / "checkpoints" / VGG16_FILE


def load_vgg16_features(path: str | os.PathLike | None) -> VGG16Features:
    """VGG16 features with ImageNet weights from ``path`` (default: the torch hub cache)."""
    file = Path(path).expanduser() if path else default_vgg16_path()
    if not file.is_file():
        raise FileNotFoundError(
            f"perceptual loss needs ImageNet VGG16 weights: {file} is missing. Put torchvision's "
            f"{VGG16_FILE} there (or set stage2.vgg16_weights in params.yaml to its path), or set "
            "stage2.perceptual_weight to 0")
    state = torch.load(file, map_location="cpu", weights_only=True)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    model = VGG16Features()
    model.load_state_dict(features)
    return model


def perceptual_loss(vgg: VGG16Features, fused: torch.Tensor, visible: torch.Tensor, infrared: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """U2Fusion-style: each source's weight comes from the information in its VGG features
    (mean squared feature gradient per layer), softmax-normalised over the two sources; the
    loss is the weighted mean squared feature distance between the fused image and each source.
    The VGG passes follow autocast; the weights and distances are computed in float32."""
    f_fused = vgg(fused)
    with torch.no_grad():
        f_vi, f_ir = vgg(visible), vgg(infrared)
    return _weighted_feature_loss(f_fused, f_vi, f_ir, temperature)


@float32_loss
def _weighted_feature_loss(f_fused: list[torch.Tensor], f_vi: list[torch.Tensor], f_ir: list[torch.Tensor],
                           temperature: float) -> torch.Tensor:
    with torch.no_grad():
        def information(feats: list[torch.Tensor]) -> torch.Tensor:
            scores = []
            for f in feats:
                gx = f[..., :, 1:] - f[..., :, :-1]
                gy = f[..., 1:, :] - f[..., :-1, :]
                scores.append(gx.pow(2).mean(dim=(1, 2, 3)) + gy.pow(2).mean(dim=(1, 2, 3)))
            return torch.stack(scores).mean(0)  # (B,)

        weights = torch.softmax(torch.stack([information(f_vi), information(f_ir)], 1) / temperature, dim=1)
    loss = f_fused[0].new_zeros(())
    for ff, fv, fi in zip(f_fused, f_vi, f_ir):
        d_vi = (ff - fv).pow(2).mean(dim=(1, 2, 3))
        d_ir = (ff - fi).pow(2).mean(dim=(1, 2, 3))
        loss = loss + (weights[:, 0] * d_vi + weights[:, 1] * d_ir).mean()
    return loss / len(f_fused)
