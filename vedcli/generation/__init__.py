"""From an image to text: decoding options, the checkpoint's generation defaults, logit processors, the decoding
strategies (greedy, sampling, beam search) and the pipeline that ties a model to its processor and tokenizer."""
