"""Latent diffusion: noise schedules, training objective, samplers and guidance, independent of the backbone."""
