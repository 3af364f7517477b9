"""inspector: see and tune Deep Compression (prune, quantize, Huffman) of trained networks."""

__version__ = "0.1.0"
