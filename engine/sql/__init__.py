"""Text to trees: the SQL dialect and its guard, the token reader, option lists, COPY syntax, bounds.

Parses and checks statement text; runs no DuckDB statement of its own and knows no session.
May import engine's leaves (errors, names) and sqlglot; nothing else of ours.
"""
