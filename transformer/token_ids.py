"""The reserved token ids, shared by the data layer (tokenizers) and decoding (a leaf module).

Padding is 0 in every tokenizer; SentencePiece vocabularies also reserve unknown, start and
end. Character and word vocabularies use only padding (and their own end-of-sentence word).
"""

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
