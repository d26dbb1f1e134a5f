"""The operational state store: API keys, submissions, votes and the audit log, in SQL.

SQLite (WAL) by default, PostgreSQL for several replicas.  ``repository.StateStore`` is the
entry point and ``records`` holds what it returns and raises; nothing is imported here, so
that importing the command line does not pull in SQLAlchemy.
"""
