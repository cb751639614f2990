"""PostgreSQL: the source of truth (journal, saga records, outbox) via asyncpg."""
