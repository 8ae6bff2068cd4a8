"""Write tiny image trees in the exact published layouts of the paper's data sets.

Images are random but seeded; ``grey=True`` writes a single-channel file. The format follows the
extension case-insensitively (``.JPG`` is a JPEG).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}


def write_image(path: Path, size: tuple[int, int] = (24, 32), grey: bool = False) -> Path:
    """A seeded random image of ``size = (H, W)`` at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(str(path.name).encode()))
    shape = size if grey else (*size, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, format=FORMATS[path.suffix.lower()])
    return path


def write_stray(folder: Path) -> None:
    """The junk real archives carry: ``Thumbs.db``, ``.DS_Store``, a resource fork, a text file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Thumbs.db").write_bytes(b"\x00junk")
    (folder / ".DS_Store").write_bytes(b"\x00junk")
    (folder / "._1.png").write_bytes(b"\x00junk")
    (folder / "readme.txt").write_text("not an image")


def lol_tree(root: Path) -> Path:
    for name in ("1.png", "2.png", "22.png"):
        write_image(root / "our485/low" / name, grey=(name == "22.png"))
    for name in ("1.png", "22.png", "3.png"):  # 2.png has no high partner, 3.png no low one
        write_image(root / "our485/high" / name)
    write_image(root / "eval15/low/10.PNG")  # upper-case extension
    write_image(root / "eval15/high/10.png")
    write_stray(root / "our485/low")
    return root


def reside_tree(root: Path) -> Path:
    write_image(root / "ITS/hazy/1_1_0.90179.png")
    write_image(root / "ITS/hazy/1_2_0.80001.png")
    write_image(root / "ITS/hazy/5_1_0.8.png")  # no clear/5.png
    write_image(root / "ITS/clear/1.png")
    write_image(root / "OTS/hazy/0001_0.8_0.2.jpg")
    write_image(root / "OTS/clear/0001.jpg", grey=True)
    write_image(root / "SOTS/indoor/hazy/1400_1.png")
    write_image(root / "SOTS/indoor/gt/1400.png")
    write_image(root / "SOTS/outdoor/hazy/0001_0.8_0.2.jpg")
    write_image(root / "SOTS/outdoor/gt/0001.png")
    write_stray(root / "ITS/hazy")
    return root


def exposure_tree(root: Path) -> Path:
    name = "a0001-jmac_DSC1459"
    for level in ("0", "N1", "N1.5", "P1", "P1.5"):
        write_image(root / f"training/INPUT_IMAGES/{name}_{level}.JPG")
    write_image(root / f"training/GT_IMAGES/{name}.jpg")
    write_image(root / "training/INPUT_IMAGES/a0002-kme_264_P1.JPG")  # no GT
    write_image(root / "validation/INPUT_IMAGES/a0003-x_P1.5.JPG")
    write_image(root / "validation/GT_IMAGES/a0003-x.jpg", grey=True)
    write_image(root / "testing/INPUT_IMAGES/a0004-y_P1.JPG")
    write_image(root / "testing/expert_c_testing_set/a0004-y.jpg")
    write_stray(root / "training/INPUT_IMAGES")
    return root


def ems_tree(root: Path) -> Path:
    for deg in ("IR_Low_contrast", "Low_light", "Over_exposure", "IR_Noise"):
        for side in ("Infrared", "Infrared_gt", "Visible", "Visible_gt"):
            for stem in ("00001D", "00002N"):
                if deg == "IR_Low_contrast" and side == "Infrared_gt" and stem == "00002N":
                    continue  # missing partner
                write_image(root / f"train/{deg}/{side}/{stem}.png", grey=side.startswith("Infrared"))
        (root / f"train/{deg}/text").mkdir(parents=True, exist_ok=True)
        (root / f"train/{deg}/text/00001D.txt").write_text("description")
    write_image(root / "eval/Infrared/00003D.png", grey=True)
    write_image(root / "eval/Visible/00003D.png")
    write_stray(root / "eval/Visible")
    return root


def llvip_tree(root: Path) -> Path:
    for split, stems in (("train", ("010001", "010002")), ("test", ("190001",))):
        for stem in stems:
            write_image(root / f"infrared/{split}/{stem}.jpg", size=(40, 50))  # 3-channel grey in the real set
            write_image(root / f"visible/{split}/{stem}.jpg", size=(40, 50))
    write_image(root / "infrared/test/190002.jpg", size=(40, 50))  # no visible partner
    write_stray(root / "visible/train")
    return root


def msrs_tree(root: Path) -> Path:
    for split, stems in (("train", ("00001D",)), ("test", ("00537D", "00881N"))):
        for stem in stems:
            write_image(root / f"{split}/ir/{stem}.png", grey=True)
            write_image(root / f"{split}/vi/{stem}.png")
    return root


def m3fd_tree(root: Path) -> Path:
    for stem in ("00000", "00001"):
        write_image(root / f"M3FD_Fusion/Ir/{stem}.png", grey=True)
        write_image(root / f"M3FD_Fusion/Vis/{stem}.png")
    write_image(root / "M3FD_Fusion/Vis/00002.png")
    return root


def roadscene_tree(root: Path) -> Path:
    for stem in ("FLIR_00006", "FLIR_00018"):
        write_image(root / f"cropinfrared/{stem}.jpg", grey=True)
        write_image(root / f"crop_LR_visible/{stem}.jpg", grey=(stem == "FLIR_00018"))
    write_stray(root / "cropinfrared")
    return root


def folder_tree(root: Path, n: int = 3, size: tuple[int, int] = (40, 48)) -> Path:
    for i in range(n):
        write_image(root / f"ir/{i:03d}.png", size=size, grey=True)
        write_image(root / f"vi/{i:03d}.png", size=size)
    return root
