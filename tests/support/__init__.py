"""What the tests share, imported as ``support.<module>`` (``tests/`` is on sys.path through
pyproject's ``pythonpath``): the repo's paths, waiting on events, the pack's actions over one
datastore, the webhook sensor's test client, the governor's set-up and the sandbox World's
pack environment. Test modules import from here, never from one another."""
