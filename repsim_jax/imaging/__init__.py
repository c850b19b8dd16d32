"""Image processing on pixel arrays, in JAX: the low-level features of `features.py` (Canny edge
density, colour warmth, Sobel texture complexity). Arrays in, arrays out."""
