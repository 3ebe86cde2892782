"""The PostgreSQL store: the store contract (`facer_cli.store.contract`) for a fleet of doors and
replicated servers sharing one database. Imported only for a `postgresql://` or `postgres://`
`db` setting, so SQLite commands never load psycopg.

- `connection`: connecting, the schema's version, transactions with retries, one-line errors.
- `migrations`: the schema as numbered steps in `facer_schema`.
- `repository`: `PostgresStore`, the data operations.
- `gallery`: `PostgresGallerySource`, what the gallery index reads.
- `pool`: `StorePool`, the pooled connections of a long-running process (`facer serve`).
- `notify`: `GalleryListener`, LISTEN for gallery changes (a replica's index kept warm).
"""
