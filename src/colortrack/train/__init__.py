"""Self-supervised training of the colourization network on unlabelled colour video."""
