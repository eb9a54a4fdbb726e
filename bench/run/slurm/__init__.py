"""SLURM through submitit: profiles, grouping jobs into arrays, the submission ledger,
the queue, submitting, status and cancel, and the task that runs a job on a node."""
