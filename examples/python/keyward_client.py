#!/usr/bin/python3
"""A small Python client of keyward's KeyAdmin service.

It creates an organization, creates a TEST key with the scope `chat` in it, lists
the organization's keys, and prints one JSON line:

    {"organization_id": "org_...", "key_id": "key_...", "key_prefix": "kw_test_...", "listed": 1}

The key's full secret is never printed.

Environment:
    KEYWARD_ADMIN_URL        host:port of KeyAdmin (default 127.0.0.1:9192)
    KEYWARD_ADMIN_TOKEN      the administrator token (or KEYWARD_ADMIN_TOKEN_FILE)

Exit status: 0 on success; 1 on a gRPC error (one line `error: <code>: <details>`
on stderr, <code> being the keyward error code from the `x-error-code` trailer when
the server sent one); 2 on a usage or set-up problem.

Run generate.sh first: the stubs are imported from gen/ beside this file.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen")

DEFAULT_URL = "127.0.0.1:9192"
CALL_TIMEOUT_SECONDS = 10.0
SECRET_PREFIX = "kw_test_"


def die(message, status):
    print(message, file=sys.stderr)
    sys.exit(status)


def load_stubs():
    """Imports grpc and the generated stubs; exits 2 with a hint if they are missing."""
    # gen/ holds namespace packages (no __init__.py), so gen/google/rpc is merged
    # with the installed google.protobuf rather than hiding it.
    sys.path.insert(0, GEN)
    try:
        import grpc  # noqa: F401
    except ImportError as e:
        die(f"error: setup: cannot import grpc ({e}); on Debian: apt-get install python3-grpcio", 2)
    try:
        from keyward.admin.v1 import key_admin_pb2, key_admin_pb2_grpc
        from google.rpc import error_details_pb2, status_pb2
    except ImportError as e:
        die(f"error: setup: cannot import the generated stubs ({e}); run {os.path.join(HERE, 'generate.sh')} first", 2)
    return grpc, key_admin_pb2, key_admin_pb2_grpc, status_pb2, error_details_pb2


def read_token():
    direct = os.environ.get("KEYWARD_ADMIN_TOKEN", "")
    path = os.environ.get("KEYWARD_ADMIN_TOKEN_FILE", "")
    if direct and path:
        die("error: setup: set either KEYWARD_ADMIN_TOKEN or KEYWARD_ADMIN_TOKEN_FILE, not both", 2)
    if direct:
        return direct.strip()
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as e:
            die(f"error: setup: cannot read KEYWARD_ADMIN_TOKEN_FILE {path}: {e.strerror}", 2)
    die("error: setup: KEYWARD_ADMIN_TOKEN (or KEYWARD_ADMIN_TOKEN_FILE) is not set", 2)


def error_code(err, status_pb2, error_details_pb2):
    """The keyward error code of a failed call, or the gRPC status name in lower case."""
    trailers = []
    try:
        trailers = list(err.trailing_metadata() or ())
    except Exception:  # a call that never reached a server may have no trailers
        pass
    for key, value in trailers:
        if key == "x-error-code" and value:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    # Fall back to google.rpc.ErrorInfo in the rich status details.
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            try:
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    info = error_details_pb2.ErrorInfo()
                    if detail.Unpack(info) and info.domain == "keyward" and info.reason:
                        return info.reason
            except Exception:
                pass
    code = err.code() if callable(getattr(err, "code", None)) else None
    return code.name.lower() if code is not None else "unknown"


def main(argv):
    parser = argparse.ArgumentParser(
        description="Create an organization and a TEST key through keyward's KeyAdmin, then list its keys.")
    parser.add_argument("name", nargs="?", default="python-example",
                        help="the organization's name (default: python-example)")
    args = parser.parse_args(argv)

    url = os.environ.get("KEYWARD_ADMIN_URL") or DEFAULT_URL
    token = read_token()
    grpc, pb, pb_grpc, status_pb2, error_details_pb2 = load_stubs()

    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(url) as channel:
        stub = pb_grpc.KeyAdminStub(channel)
        try:
            org = stub.CreateOrganization(
                pb.CreateOrganizationRequest(name=args.name),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            created = stub.CreateKey(
                pb.CreateKeyRequest(
                    organization_id=org.id,
                    name="python-example key",
                    environment=pb.ENVIRONMENT_TEST,
                    scopes=["chat"],
                ),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            listed = 0
            page_token = ""
            while True:
                page = stub.ListKeys(
                    pb.ListKeysRequest(organization_id=org.id, page_token=page_token),
                    metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
                listed += len(page.keys)
                page_token = page.next_page_token
                if not page_token:
                    break
        except grpc.RpcError as err:
            details = (err.details() if callable(getattr(err, "details", None)) else None) or str(err)
            details = " ".join(str(details).split())
            die(f"error: {error_code(err, status_pb2, error_details_pb2)}: {details}", 1)

    # The secret is shown once; this example only checks its form and drops it.
    if not created.secret.startswith(SECRET_PREFIX):
        die(f"error: unexpected_secret: the new key's secret does not start with {SECRET_PREFIX}", 1)
    created.ClearField("secret")

    print(json.dumps({
        "organization_id": org.id,
        "key_id": created.key.id,
        "key_prefix": created.key.prefix,
        "listed": listed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
