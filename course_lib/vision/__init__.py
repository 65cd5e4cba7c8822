"""Lessons 08-11, 13: task code of the image lessons: the judge of generated digits, the VAE, the GAN, diffusion
(whose sampler lesson 13's decoder reuses) and the ViT."""
