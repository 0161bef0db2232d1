"""Diffusion Lab: a small numpy core for exploring DDPM/DDIM diffusion models.

One concept per module (import them directly, this package imports nothing so
that ``from diffusion_lab import controls`` works without numpy):

- ``schedules``  what noise level at step t (beta_t, alpha_bar_t, SNR)
- ``forward``    how noise is added, q(x_t | x_0) (Ho et al. 2020, eq. 2 and 4)
- ``samplers``   how a step is undone (DDPM eq. 6, 7, 11; DDIM eq. 12)
- ``denoisers``  who predicts the noise (oracle, ideal denoiser, later a network)
- ``images``     built-in test images, image import and conversion
- ``plots``      matplotlib figures reused frame after frame (Agg, no pyplot)

Index convention (as in diffusers): steps are t = 0 .. T-1; the array for
index t is the paper's step t+1, so ``x0`` is the clean image and ``x_t`` at
index 0 has had one noising step.
"""
