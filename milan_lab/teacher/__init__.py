"""The small CLIP teacher milan-lab ships and trains: tokenizer, training, evaluation."""
