"""Weight and model interchange with Keras (3 and 2) files and PyTorch."""
