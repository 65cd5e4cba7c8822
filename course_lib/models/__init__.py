"""Lessons 01-03, 05-13, 15-16: whole networks, one module each. The lessons' headline models: the GRU translator
`seq2seq` (lesson 01), the encoder-decoder `transformer` (03), `gpt` (05), `bert` (07), `vae` (08), `gan` (09), the
diffusion `unet` (10), `vit` (11) and `clip` (12). The networks that serve them: the `judge` that scores generated
digits (08-11), the attribute `readers` and the embedding `prior` of the text-to-image pipeline (13), the
`reward_model` (15-16) and the PPO policy's `value_head` (15). Import the one you need:
`from course_lib.models.gpt import GPT`."""
