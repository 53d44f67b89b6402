"""Pure cohort logic shared by the worker, the api and the reference evaluator.

Nothing in this package performs I/O, reads a clock or the environment (except
`settings`, which every entrypoint builds once), or imports from `stream`, `api` or `cli`.
"""
