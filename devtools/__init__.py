"""Development tools of a source checkout, never imported by the service (`pieces_service`).

Run from the project directory, like `bench/`: `python -m devtools …` (`make migrate`,
`make demo-data`), `python -m devtools.localrun` (`make run`). They need the `local` extra
(in `requirements/dev.lock`, which `make install` installs) for the embedded PostgreSQL.
Not part of the wheel: `setup.cfg` packages only `pieces_service*`.

    embedded.py   the embedded PostgreSQL (pgserver) under .local/pgdata
    cli.py        `python -m devtools migrate | demo-data | token`: the operator commands of
                  `pieces-service`, with the embedded server and the development secret as
                  fallbacks
    localrun.py   `make run`
    demo.py       the demo data
    client.py     `make client`: the typed Python client, generated from the OpenAPI document
"""
