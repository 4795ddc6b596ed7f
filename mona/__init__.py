"""mona: choose instruction-tuning data with sparse-autoencoder features of a language model."""

__version__ = "0.1.0"
