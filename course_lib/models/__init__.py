"""Lessons 01-07: whole networks, built from the blocks in `course_lib.nn`: the GRU translator (lesson 01), the
encoder-decoder
Transformer (03), GPT (05), BERT (07). Import the one you need: `from course_lib.models.gpt import GPT`."""
