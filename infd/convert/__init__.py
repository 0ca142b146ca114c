"""Importers for weights of other codebases."""
