"""Lessons 01 and 04's tokenizers: the word vocabulary of the translations, byte-pair encoding and characters
(course_lib.tokenizers)."""

import pytest

from course_lib.data import translation_pairs
from course_lib.tokenizers import WordVocab, word_tokens


def test_word_vocab_round_trips_every_number_pair():
    pairs = translation_pairs()
    english = WordVocab(p.english for p in pairs["train"])
    french = WordVocab(p.french for p in pairs["train"])
    for p in pairs["train"] + pairs["test"]:
        assert english.decode(english.encode(p.english, bos=True, eos=True)) == p.english
        assert french.decode(french.encode(p.french, eos=True)) == p.french
    assert word_tokens("quatre-vingt-onze") == ["quatre", "-", "vingt", "-", "onze"]
    assert len(english) < 50 and len(french) < 50


def test_batch_pads_on_the_right():
    vocab = WordVocab(["a b", "a"])
    ids = vocab.batch(["a b", "a"], eos=True)
    assert ids.tolist() == [[4, 5, 2], [4, 2, 0]]
    assert vocab.encode("zzz") == [vocab.unk_id]


def _random_unicode(rng, n):
    """Printable ASCII, CJK, emoji and any code point (lone surrogates replaced, as text from a file would be)."""
    pick = [
        lambda: rng.randint(32, 126),
        lambda: rng.randint(0x4E00, 0x9FFF),
        lambda: rng.randint(0x1F300, 0x1FAFF),
        lambda: rng.randint(0, 0x10FFFF),
        lambda: rng.choice([9, 10, 32, 95]),
    ]
    text = "".join(chr(rng.choice(pick)()) for _ in range(n))
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def test_bpe_round_trips_any_unicode_and_compresses():
    import pydoc_data.topics
    import random

    from course_lib.tokenizers import BPETokenizer, CharTokenizer
    from course_lib.tokenizers.bpe import chunks

    text = "".join(pydoc_data.topics.topics.values())[:100_000]
    tok = BPETokenizer.train(text, 400, special_tokens=["<|endoftext|>"])
    assert tok.vocab_size == 400 and len(tok.merges) == 399 - 256
    rng = random.Random(0)
    for _ in range(300):
        s = _random_unicode(rng, rng.randint(0, 40))
        assert "".join(chunks(s)) == s
        assert tok.decode(tok.encode(s)) == s
    for s in ("naïve café", "莎士比亚的戏剧", "to be 🎭 or not 👑", ""):
        assert tok.decode(tok.encode(s)) == s
    sample = text[:20_000]
    assert len(tok.encode(sample)) < 0.6 * len(sample)  # merges compress the text they were learned on
    ids = tok.encode("x<|endoftext|>y")
    assert ids[1] == 399 and tok.decode(ids) == "x<|endoftext|>y"
    chars = CharTokenizer(text)
    assert chars.decode(chars.encode_tensor(text[:5000]).tolist()) == text[:5000]
    with pytest.raises(ValueError, match="alphabet"):
        chars.encode_tensor("莎")


def test_bpe_first_merge_is_the_most_frequent_pair():
    from course_lib.tokenizers import BPETokenizer
    from course_lib.tokenizers.bpe import count_pairs, merge_pair

    assert count_pairs([1, 2, 1, 2, 1]) == {(1, 2): 2, (2, 1): 2}
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    tok = BPETokenizer.train("aaab aaab aaab", 258)
    assert tok.merges[0] == (ord("a"), ord("a"))
    assert tok.merges[1] == (ord("a"), ord("b"))  # a tie with (aa, a): the smaller pair wins
    assert tok.token_strings(tok.encode("aaab")) == ["aa", "ab"]
