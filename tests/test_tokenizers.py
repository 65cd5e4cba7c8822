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
