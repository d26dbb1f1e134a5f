"""Importers: raw published result layouts -> the dataset contract."""
