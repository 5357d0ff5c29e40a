"""Nextflow's weblog, heard live: `flowprov nextflow listen`.

- envelope.py — the JSON Nextflow POSTs (one per event), checked (pydantic) before it is accepted;
- translate.py — envelopes → flowprov events, launch by launch (the one place that knows what a
  weblog event means for the store);
- journal.py, server.py, applier.py, cli.py — the receiver: every accepted envelope is appended
  to an on-disk journal before Nextflow gets its 2xx, and applied to the store in batches behind.
"""
