"""The RQ benchmark's job, alone in a module with no imports: RQ's default Worker imports the job's
module afresh in every forked work horse (the worker process never imports it itself), so a
heavier module would add its import time to every job."""


def noop(x):
    return x
