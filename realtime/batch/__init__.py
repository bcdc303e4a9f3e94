"""``rtv batch``: annotate many files, on a local process pool or on a Ray cluster, with a resumable ledger.

``inputs`` expands what the user named into inputs with unique output names; ``ledger`` reads and writes
``batch.jsonl`` and decides what a re-run may skip; ``worker`` annotates one input with a pipeline built once per
worker; ``local`` and ``ray_runner`` run workers; ``run`` ties them together; ``bench`` measures the scaling.
"""
