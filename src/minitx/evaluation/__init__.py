"""Measuring a trained model: loss, perplexity and bits per byte; grammaticality of its stories."""
