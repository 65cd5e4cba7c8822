"""Lessons 08-13: image generation and vision (the judge of generated digits, VAE, GAN, diffusion, ViT)."""
