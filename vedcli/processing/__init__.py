"""Model inputs and outputs: images to pixel tensors, text to token ids and back (every tokenizer format ved reads,
SentencePiece files included)."""
