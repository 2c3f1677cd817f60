"""Database: SQLAlchemy 2 async engine (SQLite/aiosqlite default, PostgreSQL/asyncpg at scale) and models."""
