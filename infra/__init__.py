"""Kafka plumbing shared by the worker, the api and the CLI: topic administration.

Unlike `cohorts/`, this package talks to a broker; like it, it imports nothing from `stream/`,
`api/` or `cli/`.
"""
