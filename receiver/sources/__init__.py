"""Parsers of the webhook formats the receiver accepts. Pure functions: JSON in, values out."""
