"""The catalog in the reserved schema: users, stages and grants, file formats, load history, table owners.

Repositories over server-owned tables. May import engine's leaves (config, errors, names, external)
and stages' model, paths, formats and errors; never a statement, the session or the engine.
"""
