"""``make bench``: one diamond saga run by the operator and by what users would pick instead.

The workload (``workload``) is the same for every system: step ``a``, then ``b`` and ``c`` in
parallel, then ``d``; each step is an HTTP POST with a JSON body to one local participant
(``participant``, a separate aiohttp process that records when every request arrives), and
``a``, ``b``, ``c`` have compensations. Each system (``systems/``) runs N sagas started at
once; ``figures`` turns the participant's arrival times and the systems' completion times
into the same numbers for all of them, ``table`` renders them, ``runner`` drives the whole.

This package must stay importable without the peers' heavy dependencies at the top level
(Temporal's workflow sandbox re-imports the workflow's module and its parents).
"""
