"""The stage file client: ``stageflight put | get | ls`` over Flight SQL and presigned URLs.

A client of the server like any other (ADBC plus HTTP): it imports nothing of flight/, engine/
or stages/.
"""
