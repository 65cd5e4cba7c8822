"""Lessons 15-16: aligning lesson 05's GPT with preferences: a simulated annotator, a reward model, PPO, DPO."""
