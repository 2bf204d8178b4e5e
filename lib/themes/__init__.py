"""Themes: NMF of image x tag probabilities, profiles, attractiveness, galleries."""
