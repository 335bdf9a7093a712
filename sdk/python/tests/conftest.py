import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import HutchServer  # noqa: E402

import hutch  # noqa: E402


@pytest.fixture(scope="session")
def server():
    """One real server for the whole suite."""
    if os.geteuid() != 0:
        pytest.skip("hutch serve needs root")
    s = HutchServer().start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server):
    c = hutch.Client(server.url, server.token)
    yield c
    c.close()


@pytest.fixture(scope="session")
def session(client):
    """One running session shared by the tests that leave it running and as they found it."""
    s = hutch.Session.create(client=client, name="shared", labels={"suite": "py"})
    yield s
    s.delete()
