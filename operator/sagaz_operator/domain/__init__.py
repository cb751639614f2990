"""The pure core: what a saga is and what to do next.

Nothing here performs I/O or reads a clock: time and randomness are passed in, so every
decision is exact and testable without a cluster, a database or a participant.
"""
