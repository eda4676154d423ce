"""Alembic migrations of the registry, run by :func:`forge_course.registry.migrate.upgrade`.

There is no ``alembic.ini``: the registry configures Alembic in code and hands it an open
connection. To change the schema, edit ``schema.py`` and add a revision file under
``versions/`` by hand (copy ``0001_initial.py``; set ``down_revision`` to the last one).
"""
