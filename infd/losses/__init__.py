"""Stage-1 losses: LPIPS-VGG, PatchGAN discriminator, hinge/adaptive GAN terms, the combined objective."""
from .lpips import LPIPS, MissingWeightsError, default_weights_path, load_lpips

__all__ = ["LPIPS", "MissingWeightsError", "default_weights_path", "load_lpips"]
