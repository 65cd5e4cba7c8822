"""Lessons 12-13: CLIP on captioned shapes, attribute readers, and text-to-image (a miniature DALL-E 2)."""
