"""Stage-1 losses: LPIPS-VGG, PatchGAN discriminator, hinge/adaptive GAN terms, the combined objective."""
from .autoencoder import AutoencoderLoss, AutoencoderLossConfig
from .discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from .gan import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from .lpips import LPIPS, MissingWeightsError, default_weights_path, load_lpips

__all__ = ["AutoencoderLoss", "AutoencoderLossConfig", "PatchDiscriminator", "PatchDiscriminatorConfig",
           "adaptive_gan_weight", "hinge_d_loss", "hinge_g_loss", "LPIPS", "MissingWeightsError",
           "default_weights_path", "load_lpips"]
