"""Networks of infd: the neural-field autoencoder and the diffusion backbones."""
