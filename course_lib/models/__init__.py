"""Lessons 01-03, 05-13, 15-16: whole networks, one module each: the GRU translator `seq2seq` (lesson 01), the
encoder-decoder `transformer` (03), `gpt` (05), `bert` (07), `vae` (08), `gan` (09), the diffusion `unet` (10), `vit`
(11) and `clip` (12). Import the one you need: `from course_lib.models.gpt import GPT`."""
