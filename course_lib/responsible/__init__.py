"""Lesson 18: responsible generative AI, measured on the course's own models: a watermark in the GPT's sampler,
memorisation of planted secrets, an association the GPT learned from its corpus, and a detector of generated
digits."""
