"""A local DynamoDB for the tests: moto's server, one request at a time, with the tables asked for.

moto (PyPI) speaks DynamoDB's API, but its threaded server runs requests side by side without a
lock: two conditional writes of one item can both pass their condition, so a compare-and-swap or
an `increment` that real DynamoDB makes atomic is not atomic there (racing creates on real Spin
handed out one index version twice). Real DynamoDB applies each conditional write atomically;
serving one request at a time gives the same guarantee, at the cost of speed.

    python3 tests/lib/dynamodb_server.py PORT TABLE [TABLE ...]

Prints "ready" once it listens and the tables (string partition key `PK`, as Spin's `aws_dynamo`
store wants) exist; runs until killed.
"""

import sys
import threading

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


def serialized(app):
    """The WSGI app `app`, running one request at a time (the whole response included)."""
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    return one_at_a_time


def main():
    port, tables = int(sys.argv[1]), sys.argv[2:]
    app = serialized(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    for table in tables:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
