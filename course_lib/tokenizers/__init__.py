"""Lessons 01-07: tokenizers, words (lessons 01-03), characters and byte-level BPE (lesson 04 onwards)."""

from course_lib.tokenizers.bpe import BPETokenizer
from course_lib.tokenizers.chars import CharTokenizer
from course_lib.tokenizers.words import BOS, EOS, PAD, UNK, WordVocab, join_words, word_tokens

__all__ = ["BPETokenizer", "CharTokenizer", "WordVocab", "word_tokens", "join_words", "PAD", "BOS", "EOS", "UNK"]
